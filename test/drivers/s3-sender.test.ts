// The S3 sender's behaviour at the edges s3rver cannot produce: a store whose connection breaks
// mid-body, one that ignores Range, and what happens to the S3 request when the client goes away. A
// small HTTP server answers GetObject the way S3 does, and reports how each response ended.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createS3Driver, type S3BlobDriver } from '../../storage-drivers/blob/s3.js';
import { StorageUnavailableError } from '../../storage-drivers/blob/types.js';

const MiB = 1024 * 1024;
const OBJECT = Buffer.alloc(8 * MiB);
for (let i = 0; i < OBJECT.length; i += 4) OBJECT.writeUInt32LE((i * 2654435761) >>> 0, i);

interface Served {
  /** The response was written in full (not cut, not abandoned by the driver). */
  finished: Promise<boolean>;
  socket: Socket;
}

/** Writes `body` in 64 KiB pieces, waiting for the socket to drain; stops when the response closes. */
async function writeSlowly(res: ServerResponse, body: Buffer, cutAfter?: number): Promise<void> {
  for (let at = 0; at < body.length && !res.destroyed; at += 64 * 1024) {
    if (cutAfter !== undefined && at >= cutAfter) {
      // The store's connection breaks: headers promised more bytes than will come.
      res.socket?.destroy();
      return;
    }
    if (!res.write(body.subarray(at, at + 64 * 1024))) await drainedOrClosed(res);
  }
  res.end();
}

function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

describe('S3 sender against a store that misbehaves', () => {
  let server: Server;
  let endpoint = '';
  let mode: { cutAfter?: number; ignoreRange?: boolean } = {};
  let served: Served[] = [];
  const connections = new Set<Socket>();
  let driver: S3BlobDriver;

  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      let body = OBJECT;
      if (range && !mode.ignoreRange) {
        const start = Number(range[1]);
        const end = range[2] === '' ? OBJECT.length - 1 : Math.min(Number(range[2]), OBJECT.length - 1);
        body = OBJECT.subarray(start, end + 1);
        res.writeHead(206, { 'Content-Length': body.length, 'Content-Range': `bytes ${start}-${end}/${OBJECT.length}`, ETag: '"e"' });
      } else {
        res.writeHead(200, { 'Content-Length': body.length, ETag: '"e"' });
      }
      const finished = new Promise<boolean>((resolve) => res.once('close', () => resolve(res.writableFinished)));
      served.push({ finished, socket: req.socket });
      void writeSlowly(res, body, mode.cutAfter);
    });
    server.on('connection', (socket: Socket) => {
      connections.add(socket);
      socket.once('close', () => connections.delete(socket));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    driver = createS3Driver({ bucket: 'b', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'k', secretAccessKey: 's' }, maxAttempts: 1 });
  });
  after(async () => {
    await driver.close();
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  });
  beforeEach(() => {
    mode = {};
    served = [];
  });

  it('a client that leaves mid-blob aborts the GetObject: its connection to the store is closed', { timeout: 30_000 }, async () => {
    const controller = new AbortController();
    let received = 0;
    // The client: takes bytes until it has 2 MiB, then goes away, as send.ts sees a closed response.
    const client = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        if (received >= 2 * MiB) controller.abort();
        callback();
      },
    });
    const sender = await driver.openSender('blobs/x');
    await assert.rejects(sender.sendTo(client, controller.signal), { name: 'AbortError' });
    const [response] = served;
    assert.ok(response);
    // Before close(): the abort itself stops the download (a send left waiting would hang here).
    assert.equal(await response.finished, false, 'the store was not made to send the whole object');
    if (!response.socket.destroyed) await once(response.socket, 'close');
    await sender.close();
    assert.ok(received < OBJECT.length);
  });

  it('a sender closed before sending (the client left while it opened) closes the connection to the store', { timeout: 30_000 }, async () => {
    const sender = await driver.openSender('blobs/x');
    await sender.close();
    const [response] = served;
    assert.ok(response);
    assert.equal(await response.finished, false);
  });

  it('a body cut short by the store fails the send (the response is cut, never completed)', async () => {
    mode = { cutAfter: 3 * MiB };
    let received = 0;
    const client = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        callback();
      },
    });
    const sender = await driver.openSender('blobs/x');
    assert.equal(sender.size, OBJECT.length);
    let beforeLast = false;
    const check = { update: () => undefined, beforeLast: () => (beforeLast = true) };
    await assert.rejects(sender.sendTo(client, new AbortController().signal, check), StorageUnavailableError);
    await sender.close();
    assert.ok(received <= 3 * MiB, `${received} bytes went out`);
    assert.equal(beforeLast, false, 'the check never reached the end');
  });

  it('sends the range itself when the store ignores Range, and stops the rest of the body', async () => {
    mode = { ignoreRange: true };
    const parts: Buffer[] = [];
    const client = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        parts.push(Buffer.from(chunk));
        callback();
      },
    });
    const sender = await driver.openSender('blobs/x', { start: MiB + 5, end: 2 * MiB + 9 });
    assert.equal(sender.size, OBJECT.length);
    await sender.sendTo(client);
    await sender.close();
    assert.deepEqual(Buffer.concat(parts), OBJECT.subarray(MiB + 5, 2 * MiB + 10));
    const [response] = served;
    assert.ok(response);
    assert.equal(await response.finished, false, 'the whole object was not downloaded for a range');
  });

  it('a whole send leaves the connection to the store open for the next request', async () => {
    const sink = () =>
      new Writable({
        write(_chunk: Buffer, _encoding, callback) {
          callback();
        },
      });
    for (let i = 0; i < 2; i++) {
      const sender = await driver.openSender('blobs/x');
      await sender.sendTo(sink());
      await sender.close();
    }
    assert.equal(served.length, 2);
    assert.equal(await served[0]?.finished, true);
    assert.equal(served[0]?.socket, served[1]?.socket, 'the second GET reused the first one’s connection');
    assert.equal(connections.size, 1);
  });
});
