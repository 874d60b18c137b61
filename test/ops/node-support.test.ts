// Issue 10, item 13: Berth states which Node.js versions it supports; the AWS SDK's own Node-version
// warning does not show on every start.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nodeSupportNotice, SUPPORTED_NODE_MAJORS } from '../../server/operations/node-support.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

describe('supported Node.js versions', () => {
  it('says nothing on a maintained supported major', () => {
    assert.equal(nodeSupportNotice('v24.11.0'), undefined);
    assert.equal(nodeSupportNotice('v22.23.3'), undefined);
  });

  it('names the supported versions on Node 20 (past its end of life) and on unsupported majors', () => {
    assert.match(nodeSupportNotice('v20.20.2') ?? '', /end of life in April 2026.*Berth supports Node\.js 20, 22 and 24/);
    for (const v of ['v18.20.0', 'v21.7.3', 'v23.1.0']) assert.match(nodeSupportNotice(v) ?? '', /is not supported: Berth supports Node\.js 20, 22 and 24/, v);
  });

  it('package.json engines and the README name the same versions', () => {
    const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { engines: { node: string } };
    assert.equal(pkg.engines.node, SUPPORTED_NODE_MAJORS.join(' || '));
    assert.match(readFileSync(`${root}README.md`, 'utf8'), /Node\.js 20, 22 or 24/);
  });

  it('the S3 client keeps the AWS SDK from printing its Node-version warning', () => {
    // The SDK's check runs with a Node 20 version string whatever Node runs this test.
    const script = `
      const { createRequire } = await import('node:module');
      const { createS3Client } = await import(${JSON.stringify(`${root}dist/storage-drivers/blob/s3-client.js`)});
      createS3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9', forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
        maxAttempts: 1, checksum: 'when_required', connectTimeoutMs: 1000, requestTimeoutMs: 1000, maxSockets: 1 });
      createRequire(${JSON.stringify(`${root}package.json`)})('@aws-sdk/core/client').emitWarningIfUnsupportedVersion('v20.20.2');
    `;
    const env = { ...process.env };
    delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env });
    assert.equal(run.status, 0, run.stderr);
    assert.doesNotMatch(run.stderr, /NodeVersionSupportWarning/);
  });
});
