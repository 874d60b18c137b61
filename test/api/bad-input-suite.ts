// Issue 2, item 6: malformed requests, each answered with the spec's code and a 4xx, never a 500,
// and none of them storing anything. Run on every storage × metadata pair (test/helpers/matrix.ts):
// what a bad request may leave behind depends on the blob driver and the metadata store.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { blob, imageManifest, OCI_INDEX, OCI_MANIFEST, RegistryClient, sha256 } from '../helpers/oci.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestRegistry, type TestRegistry, type TestRegistryOptions } from '../helpers/registry.js';

const REPO = 'fixture/app';
const OTHER = 'fixture/other';
/** A valid name nothing is ever pushed to: every request against it must leave it absent. */
const EMPTY = 'bad/input';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const UNKNOWN_DIGEST = `sha256:${'0'.repeat(64)}`;
const MiB = 1024 * 1024;

export interface Case {
  name: string;
  method: string;
  /** `{upload}` is replaced by the id of a fresh upload session in REPO. */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  chunked?: boolean;
  status: number;
  code: string;
}

const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
const layer = blob(Buffer.alloc(1000, 7));
const manifest = imageManifest(config, [layer]);
const otherBlob = blob('only in fixture/other');
export const payload = blob('some bytes that are never stored');

function manifestJson(
  extra: Record<string, unknown> = {},
  layers: unknown = [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size }],
): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
    layers,
    ...extra,
  });
}

function sha512(data: Buffer | string): string {
  return `sha512:${createHash('sha512').update(data).digest('hex')}`;
}

function nested(depth: number, open: string, close: string, inner = '1'): string {
  return `${open.repeat(depth)}${inner}${close.repeat(depth)}`;
}

const ct = (type: string) => ({ 'Content-Type': type });
const octet = ct('application/octet-stream');

function nameCases(): Case[] {
  const bad: Array<[string, string]> = [
    ['upper case', 'Upper'],
    ['upper case in a later component', 'fixture/App'],
    ['a .. component', 'a/../b'],
    ['a leading .. component', '../a'],
    ['an empty component (//)', 'a//b'],
    ['a trailing /', 'a/'],
    ['a leading -', '-a'],
    ['a component starting with -', 'a/-b'],
    ['a trailing separator', 'a_'],
    ['three underscores', 'a___b'],
    ['two dots', 'a..b'],
    ['a leading .', '.a'],
    ['a trailing .', 'a.'],
    ['256 characters', 'a'.repeat(256)],
    ['300 characters in components', Array.from({ length: 30 }, () => 'abcdefghi').join('/')],
    ['a percent-encoded slash', 'a%2Fb'],
    ['percent-encoded dots', '%2e%2e'],
    ['a percent-encoded .. component', 'a/%2e%2e/b'],
    ['percent-encoded unicode', 'caf%C3%A9'],
    ['an encoded space', 'a%20b'],
    ['an encoded NUL', 'a%00b'],
    ['a colon', 'a:b'],
    ['the internal rewrite prefix', '_r/x'],
    ['an underscore start', '_a'],
  ];
  const cases: Case[] = bad.map(([what, name]) => ({
    name: `name with ${what}: tags list`,
    method: 'GET',
    path: `/v2/${name}/tags/list`,
    status: 400,
    code: 'NAME_INVALID',
  }));
  cases.push(
    { name: 'upper-case name: manifest GET', method: 'GET', path: '/v2/Bad/manifests/v1', status: 400, code: 'NAME_INVALID' },
    {
      name: 'upper-case name: manifest PUT',
      method: 'PUT',
      path: '/v2/Bad/manifests/v1',
      headers: ct(OCI_MANIFEST),
      body: manifest.data,
      status: 400,
      code: 'NAME_INVALID',
    },
    { name: '.. name: manifest DELETE', method: 'DELETE', path: `/v2/a/../b/manifests/${manifest.digest}`, status: 400, code: 'NAME_INVALID' },
    { name: 'upper-case name: blob GET', method: 'GET', path: `/v2/Bad/blobs/${layer.digest}`, status: 400, code: 'NAME_INVALID' },
    { name: 'upper-case name: blob HEAD', method: 'HEAD', path: `/v2/Bad/blobs/${layer.digest}`, status: 400, code: 'NAME_INVALID' },
    { name: 'upper-case name: upload POST', method: 'POST', path: '/v2/UPPER/blobs/uploads/', status: 400, code: 'NAME_INVALID' },
    {
      name: '// name: monolithic upload',
      method: 'POST',
      path: `/v2/a//b/blobs/uploads/?digest=${payload.digest}`,
      headers: octet,
      body: payload.data,
      status: 400,
      code: 'NAME_INVALID',
    },
    {
      name: 'invalid mount source',
      method: 'POST',
      path: `/v2/${REPO}/blobs/uploads/?mount=${layer.digest}&from=Bad..name`,
      status: 400,
      code: 'NAME_INVALID',
    },
    { name: 'upper-case name: referrers', method: 'GET', path: `/v2/Bad/referrers/${manifest.digest}`, status: 400, code: 'NAME_INVALID' },
  );
  return cases;
}

function tagCases(): Case[] {
  const put = (name: string, tag: string): Case => ({
    name,
    method: 'PUT',
    path: `/v2/${REPO}/manifests/${tag}`,
    headers: ct(OCI_MANIFEST),
    body: manifest.data,
    status: 400,
    code: 'TAG_INVALID',
  });
  return [
    put('tag of 129 characters', 'a'.repeat(129)),
    put('tag starting with .', '.hidden'),
    put('tag starting with -', '-dash'),
    put('tag with an encoded space', 'a%20b'),
    put('tag with !', 'a!'),
    put('tag with +', 'a+b'),
    put('tag with @', 'a@b'),
    put('tag with unicode', 'caf%C3%A9'),
    // No manifest can have an invalid reference: reads find nothing (404, as the OCI conformance suite expects), writes are refused.
    { name: 'GET of a tag starting with -', method: 'GET', path: `/v2/${REPO}/manifests/-x`, status: 404, code: 'MANIFEST_UNKNOWN' },
    { name: 'GET of a tag starting with .', method: 'GET', path: `/v2/${REPO}/manifests/.INVALID_MANIFEST_NAME`, status: 404, code: 'MANIFEST_UNKNOWN' },
    { name: 'HEAD of a tag starting with .', method: 'HEAD', path: `/v2/${REPO}/manifests/.INVALID_MANIFEST_NAME`, status: 404, code: 'MANIFEST_UNKNOWN' },
    { name: 'GET of a reference with a slash', method: 'GET', path: `/v2/${REPO}/manifests/v1/extra`, status: 404, code: 'MANIFEST_UNKNOWN' },
    {
      name: 'PUT of a tag starting with . (.INVALID_MANIFEST_NAME)',
      method: 'PUT',
      path: `/v2/${REPO}/manifests/.INVALID_MANIFEST_NAME`,
      headers: ct(OCI_MANIFEST),
      body: manifest.data,
      status: 400,
      code: 'TAG_INVALID',
    },
    {
      name: 'PUT of a reference with a slash',
      method: 'PUT',
      path: `/v2/${REPO}/manifests/a/b`,
      headers: ct(OCI_MANIFEST),
      body: manifest.data,
      status: 400,
      code: 'TAG_INVALID',
    },
    { name: 'DELETE of a tag of 200 characters', method: 'DELETE', path: `/v2/${REPO}/manifests/${'b'.repeat(200)}`, status: 400, code: 'TAG_INVALID' },
    {
      name: '?tag= starting with .',
      method: 'PUT',
      path: `/v2/${REPO}/manifests/${manifest.digest}?tag=.bad`,
      headers: ct(OCI_MANIFEST),
      body: manifest.data,
      status: 400,
      code: 'TAG_INVALID',
    },
    {
      name: '?tag= too long after a good one',
      method: 'PUT',
      path: `/v2/${REPO}/manifests/${manifest.digest}?tag=ok&tag=${'c'.repeat(129)}`,
      headers: ct(OCI_MANIFEST),
      body: manifest.data,
      status: 400,
      code: 'TAG_INVALID',
    },
    {
      name: '?tag= with a tag reference',
      method: 'PUT',
      path: `/v2/${REPO}/manifests/v2?tag=v3`,
      headers: ct(OCI_MANIFEST),
      body: manifest.data,
      status: 400,
      code: 'TAG_INVALID',
    },
    {
      name: '101 ?tag= values',
      method: 'PUT',
      path: `/v2/${REPO}/manifests/${manifest.digest}?${Array.from({ length: 101 }, (_, i) => `tag=t${i}`).join('&')}`,
      headers: ct(OCI_MANIFEST),
      body: manifest.data,
      status: 400,
      code: 'TAG_INVALID',
    },
  ];
}

function digestCases(): Case[] {
  const malformed: Array<[string, string]> = [
    ['md5', 'md5:d41d8cd98f00b204e9800998ecf8427e'],
    ['sha256 too short', 'sha256:abc'],
    ['sha256 of 65 hex digits', `sha256:${'a'.repeat(65)}`],
    ['upper-case hex', `sha256:${'A'.repeat(64)}`],
    ['no colon', `sha256${'a'.repeat(64)}`],
    ['sha512 of 64 hex digits', `sha512:${'a'.repeat(64)}`],
    ['empty hex', 'sha256:'],
    ['no algorithm', `:${'a'.repeat(64)}`],
    ['non-hex digits', `sha256:${'g'.repeat(64)}`],
  ];
  const cases: Case[] = malformed.map(([what, d]) => ({
    name: `blob GET with ${what} digest`,
    method: 'GET',
    path: `/v2/${REPO}/blobs/${d}`,
    status: 400,
    code: 'DIGEST_INVALID',
  }));
  cases.push(
    {
      name: 'blob GET with a digest followed by a segment',
      method: 'GET',
      path: `/v2/${REPO}/blobs/${layer.digest}/extra`,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    {
      name: 'blob DELETE with a traversal after the digest',
      method: 'DELETE',
      path: `/v2/${REPO}/blobs/sha256:abc/../../x`,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    {
      name: 'manifest GET with a digest followed by a segment',
      method: 'GET',
      path: `/v2/${REPO}/manifests/${manifest.digest}/x`,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    { name: 'blob HEAD with md5 digest', method: 'HEAD', path: `/v2/${REPO}/blobs/md5:d41d8cd98f00b204e9800998ecf8427e`, status: 400, code: 'DIGEST_INVALID' },
    { name: 'blob DELETE with short digest', method: 'DELETE', path: `/v2/${REPO}/blobs/sha256:abc`, status: 400, code: 'DIGEST_INVALID' },
    { name: 'manifest GET with short digest', method: 'GET', path: `/v2/${REPO}/manifests/sha256:abc`, status: 400, code: 'DIGEST_INVALID' },
    {
      name: 'manifest GET with md5 digest',
      method: 'GET',
      path: `/v2/${REPO}/manifests/md5:d41d8cd98f00b204e9800998ecf8427e`,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    { name: 'referrers of a short digest', method: 'GET', path: `/v2/${REPO}/referrers/sha256:abc`, status: 400, code: 'DIGEST_INVALID' },
    { name: 'referrers of a tag', method: 'GET', path: `/v2/${REPO}/referrers/latest`, status: 400, code: 'DIGEST_INVALID' },
    {
      name: 'monolithic POST with md5 digest',
      method: 'POST',
      path: `/v2/${REPO}/blobs/uploads/?digest=md5:d41d8cd98f00b204e9800998ecf8427e`,
      headers: octet,
      body: payload.data,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    {
      name: 'monolithic POST with short digest',
      method: 'POST',
      path: `/v2/${REPO}/blobs/uploads/?digest=sha256:abc`,
      headers: octet,
      body: payload.data,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    {
      name: 'monolithic POST with the digest of other bytes',
      method: 'POST',
      path: `/v2/${REPO}/blobs/uploads/?digest=${sha256('other')}`,
      headers: octet,
      body: payload.data,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    {
      name: 'monolithic POST with a wrong sha512',
      method: 'POST',
      path: `/v2/${REPO}/blobs/uploads/?digest=${sha512('other')}`,
      headers: octet,
      body: payload.data,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    {
      name: 'monolithic POST with two digests',
      method: 'POST',
      path: `/v2/${REPO}/blobs/uploads/?digest=${payload.digest}&digest=${payload.digest}`,
      headers: octet,
      body: payload.data,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    {
      name: 'mount of a malformed digest',
      method: 'POST',
      path: `/v2/${REPO}/blobs/uploads/?mount=sha256:abc&from=${OTHER}`,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    {
      name: 'upload PUT with a malformed digest',
      method: 'PUT',
      path: `/v2/${REPO}/blobs/uploads/{upload}?digest=sha256:abc`,
      headers: octet,
      body: payload.data,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    {
      name: 'upload PUT without a digest',
      method: 'PUT',
      path: `/v2/${REPO}/blobs/uploads/{upload}`,
      headers: octet,
      body: payload.data,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    {
      name: 'upload PUT with the digest of other bytes',
      method: 'PUT',
      path: `/v2/${REPO}/blobs/uploads/{upload}?digest=${sha256('other')}`,
      headers: octet,
      body: payload.data,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    {
      name: 'empty upload PUT with a non-empty digest',
      method: 'PUT',
      path: `/v2/${REPO}/blobs/uploads/{upload}?digest=${payload.digest}`,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    {
      name: 'manifest PUT by the wrong digest',
      method: 'PUT',
      path: `/v2/${REPO}/manifests/${sha256('other')}`,
      headers: ct(OCI_MANIFEST),
      body: manifest.data,
      status: 400,
      code: 'DIGEST_INVALID',
    },
    {
      name: 'manifest PUT by the wrong sha512',
      method: 'PUT',
      path: `/v2/${REPO}/manifests/${sha512('other')}`,
      headers: ct(OCI_MANIFEST),
      body: manifest.data,
      status: 400,
      code: 'DIGEST_INVALID',
    },
  );
  return cases;
}

function lengthCases(): Case[] {
  return [
    {
      name: 'monolithic POST with Content-Length past 2^53',
      method: 'POST',
      path: `/v2/${REPO}/blobs/uploads/?digest=${payload.digest}`,
      headers: { ...octet, 'Content-Length': '9999999999999999' },
      body: payload.data,
      status: 400,
      code: 'SIZE_INVALID',
    },
    {
      name: 'PATCH whose Content-Range and Content-Length disagree',
      method: 'PATCH',
      path: `/v2/${REPO}/blobs/uploads/{upload}`,
      headers: { ...octet, 'Content-Range': '0-99' },
      body: payload.data,
      status: 416,
      code: 'RANGE_INVALID',
    },
    {
      name: 'chunked PATCH shorter than its Content-Range',
      method: 'PATCH',
      path: `/v2/${REPO}/blobs/uploads/{upload}`,
      headers: { ...octet, 'Content-Range': '0-99' },
      body: Buffer.alloc(10),
      chunked: true,
      status: 400,
      code: 'SIZE_INVALID',
    },
    {
      name: 'chunked PATCH longer than its Content-Range',
      method: 'PATCH',
      path: `/v2/${REPO}/blobs/uploads/{upload}`,
      headers: { ...octet, 'Content-Range': '0-4' },
      body: Buffer.alloc(10),
      chunked: true,
      status: 400,
      code: 'SIZE_INVALID',
    },
    {
      name: 'chunked PUT longer than its Content-Range',
      method: 'PUT',
      path: `/v2/${REPO}/blobs/uploads/{upload}?digest=${payload.digest}`,
      headers: { ...octet, 'Content-Range': '0-4' },
      body: payload.data,
      chunked: true,
      status: 400,
      code: 'SIZE_INVALID',
    },
  ];
}

function rangeCases(): Case[] {
  const get = (what: string, range: string): Case => ({
    name: `blob GET with Range ${what}`,
    method: 'GET',
    path: `/v2/${REPO}/blobs/${layer.digest}`,
    headers: { Range: range },
    status: 416,
    code: 'RANGE_INVALID',
  });
  const patch = (what: string, range: string): Case => ({
    name: `PATCH with Content-Range ${what}`,
    method: 'PATCH',
    path: `/v2/${REPO}/blobs/uploads/{upload}`,
    headers: { ...octet, 'Content-Range': range },
    body: Buffer.alloc(10),
    status: 416,
    code: 'RANGE_INVALID',
  });
  return [
    get('of letters', 'bytes=abc-def'),
    get('without numbers', 'bytes=-'),
    get('reversed', 'bytes=50-10'),
    get('of an empty suffix', 'bytes=-0'),
    get('starting past 2^53', 'bytes=99999999999999999999-'),
    get('ending past 2^53', 'bytes=0-99999999999999999999'),
    get('starting at the size', `bytes=${layer.size}-`),
    get('in another unit', 'items=0-5'),
    get('with several ranges', 'bytes=0-1,3-4'),
    get('negative', 'bytes=-1-2'),
    get('without a unit', '0-10'),
    patch('of letters', 'abc'),
    patch('reversed', '9-0'),
    patch('negative', '-1-8'),
    patch('past 2^53', '99999999999999999999-100000000000000000008'),
    patch('not at the offset', '10-19'),
    patch('with a garbage total', '0-9/abc'),
    patch('in another unit', 'items 0-9'),
    {
      name: 'upload PUT with Content-Range not at the offset',
      method: 'PUT',
      path: `/v2/${REPO}/blobs/uploads/{upload}?digest=${payload.digest}`,
      headers: { ...octet, 'Content-Range': `5-${payload.size + 4}` },
      body: payload.data,
      status: 416,
      code: 'RANGE_INVALID',
    },
    {
      name: 'upload PUT with garbage Content-Range',
      method: 'PUT',
      path: `/v2/${REPO}/blobs/uploads/{upload}?digest=${payload.digest}`,
      headers: { ...octet, 'Content-Range': 'x-y' },
      body: payload.data,
      status: 416,
      code: 'RANGE_INVALID',
    },
  ];
}

function paginationCases(): Case[] {
  const cases: Case[] = [];
  for (const [what, n] of [
    ['negative', '-1'],
    ['not a number', 'abc'],
    ['past 2^53', '99999999999999999999'],
    ['in exponent form', '1e3'],
    ['fractional', '1.5'],
    ['hexadecimal', '0x10'],
    ['empty', ''],
  ] as const) {
    cases.push({ name: `tags list with n ${what}`, method: 'GET', path: `/v2/${REPO}/tags/list?n=${n}`, status: 400, code: 'PAGINATION_NUMBER_INVALID' });
    cases.push({ name: `catalog with n ${what}`, method: 'GET', path: `/v2/_catalog?n=${n}`, status: 400, code: 'PAGINATION_NUMBER_INVALID' });
  }
  cases.push(
    { name: 'tags list with n over the page limit', method: 'GET', path: `/v2/${REPO}/tags/list?n=10001`, status: 400, code: 'PAGINATION_NUMBER_INVALID' },
    { name: 'catalog with n over the page limit', method: 'GET', path: '/v2/_catalog?n=1001', status: 400, code: 'PAGINATION_NUMBER_INVALID' },
    { name: 'tags list with two n', method: 'GET', path: `/v2/${REPO}/tags/list?n=1&n=2`, status: 400, code: 'PAGINATION_NUMBER_INVALID' },
  );
  return cases;
}

function uploadIdCases(): Case[] {
  const id = randomUUID();
  const session = (what: string, uuid: string, method = 'GET'): Case => ({
    name: `upload ${method} of ${what}`,
    method,
    path: `/v2/${REPO}/blobs/uploads/${uuid}`,
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
  });
  return [
    session('a non-UUID id', 'not-a-uuid'),
    session('a random UUID', id),
    session('a random UUID', id, 'DELETE'),
    {
      name: 'PATCH of a random UUID',
      method: 'PATCH',
      path: `/v2/${REPO}/blobs/uploads/${id}`,
      headers: octet,
      body: payload.data,
      status: 404,
      code: 'BLOB_UPLOAD_UNKNOWN',
    },
    {
      name: 'PUT of a random UUID',
      method: 'PUT',
      path: `/v2/${REPO}/blobs/uploads/${id}?digest=${payload.digest}`,
      headers: octet,
      body: payload.data,
      status: 404,
      code: 'BLOB_UPLOAD_UNKNOWN',
    },
    session('an upper-case UUID', id.toUpperCase()),
    session('an encoded ..', '%2e%2e'),
    session('an encoded ../../etc', '..%2F..%2Fetc'),
    session('a raw ../../etc', '../../etc'),
    session('a raw ../../etc', '../../etc', 'PATCH'),
    session('an id with a NUL', `${id.slice(0, 35)}%00`),
    session('an id with a trailing segment', `${id}/extra`),
    session('an id with a trailing segment', `${id}/extra`, 'DELETE'),
    session('no id', ''),
    {
      name: 'upload PUT of no id',
      method: 'PUT',
      path: `/v2/${REPO}/blobs/uploads/?digest=${payload.digest}`,
      headers: octet,
      body: payload.data,
      status: 404,
      code: 'BLOB_UPLOAD_UNKNOWN',
    },
    {
      name: 'upload GET of a session from another repository',
      method: 'GET',
      path: `/v2/${OTHER}/blobs/uploads/{upload}`,
      status: 404,
      code: 'BLOB_UPLOAD_UNKNOWN',
    },
    {
      name: 'upload PUT of a session from another repository',
      method: 'PUT',
      path: `/v2/${OTHER}/blobs/uploads/{upload}?digest=${payload.digest}`,
      headers: octet,
      body: payload.data,
      status: 404,
      code: 'BLOB_UPLOAD_UNKNOWN',
    },
  ];
}

function manifestCases(): Case[] {
  const put = (name: string, body: Buffer | string, type = OCI_MANIFEST, code = 'MANIFEST_INVALID', status = 400): Case => ({
    name: `manifest PUT: ${name}`,
    method: 'PUT',
    path: `/v2/${REPO}/manifests/broken`,
    headers: ct(type),
    body,
    status,
    code,
  });
  const desc = (fields: Record<string, unknown>) => [
    { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size, ...fields },
  ];
  const good = manifestJson();
  return [
    put('not JSON', 'hello'),
    put('truncated JSON', good.slice(0, good.length - 10)),
    put('a JSON array', '[]'),
    put('a JSON string', '"manifest"'),
    put('JSON null', 'null'),
    put('a JSON number', '42'),
    put('schemaVersion 1', manifestJson({ schemaVersion: 1 })),
    put('schemaVersion as a string', manifestJson({ schemaVersion: '2' })),
    put('no schemaVersion', JSON.stringify({ mediaType: OCI_MANIFEST, config: JSON.parse(good).config, layers: [] })),
    put('mediaType not matching Content-Type', good, DOCKER_MANIFEST),
    put('mediaType not matching a text/plain Content-Type', good, 'text/plain'),
    put('mediaType as a number', manifestJson({ mediaType: 7 })),
    put('no way to tell the type', JSON.stringify({ schemaVersion: 2 }), 'application/json'),
    put('a config with a bad digest', manifestJson({ config: { mediaType: 'x/y', digest: 'sha256:xyz', size: 1 } })),
    put('a config missing', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] })),
    put('a layer with a bad digest', manifestJson({}, desc({ digest: 'sha256:xyz' }))),
    put('a layer with an md5 digest', manifestJson({}, desc({ digest: 'md5:d41d8cd98f00b204e9800998ecf8427e' }))),
    put('a layer with a negative size', manifestJson({}, desc({ size: -1 }))),
    put('a layer with size as a string', manifestJson({}, desc({ size: String(layer.size) }))),
    put('a layer with a fractional size', manifestJson({}, desc({ size: 1.5 }))),
    put('a layer with a size past 2^53', manifestJson({}, desc({ size: 2 ** 60 }))),
    put('a layer with an empty mediaType', manifestJson({}, desc({ mediaType: '' }))),
    put('a null layer', manifestJson({}, [null])),
    put('layers not an array', manifestJson({}, { digest: layer.digest })),
    put('urls not strings', manifestJson({}, desc({ urls: [1] }))),
    put('annotations not strings', manifestJson({ annotations: { a: 1 } })),
    put('a subject with a bad digest', manifestJson({ subject: { mediaType: OCI_MANIFEST, digest: 'sha256:1', size: 2 } })),
    put('an index whose manifests is not an array', JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: {} }), OCI_INDEX),
    put(
      'an index child with a bad digest',
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: 'nope', size: 1 }] }),
      OCI_INDEX,
    ),
    put('10,000 nested arrays', nested(10_000, '[', ']')),
    put('10,000 nested objects', nested(10_000, '{"a":', '}')),
    put('deep nesting inside a valid manifest', manifestJson({ annotations: undefined, extra: JSON.parse(nested(100, '[', ']')) as unknown })),
    put('an empty body', ''),
    put('a byte-order mark before the JSON', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(good)])),
    put('invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])),
    put('over 4 MiB', manifestJson({ annotations: { pad: 'x'.repeat(4 * MiB) } }), OCI_MANIFEST, 'MANIFEST_TOO_LARGE', 413),
    put('a layer not in the repository', manifestJson({}, desc({ digest: UNKNOWN_DIGEST })), OCI_MANIFEST, 'MANIFEST_BLOB_UNKNOWN'),
    put('a blob only in another repository', manifestJson({}, desc({ digest: otherBlob.digest, size: otherBlob.size })), OCI_MANIFEST, 'MANIFEST_BLOB_UNKNOWN'),
    put(
      'an index child not in the repository',
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: UNKNOWN_DIGEST, size: 10 }] }),
      OCI_INDEX,
      'MANIFEST_BLOB_UNKNOWN',
    ),
    {
      name: 'manifest PUT into a repository without its blobs',
      method: 'PUT',
      path: `/v2/${EMPTY}/manifests/v1`,
      headers: ct(OCI_MANIFEST),
      body: manifest.data,
      status: 400,
      code: 'MANIFEST_BLOB_UNKNOWN',
    },
  ];
}

function unknownCases(): Case[] {
  return [
    { name: 'GET of an unknown tag', method: 'GET', path: `/v2/${REPO}/manifests/nope`, status: 404, code: 'MANIFEST_UNKNOWN' },
    { name: 'GET of an unknown manifest digest', method: 'GET', path: `/v2/${REPO}/manifests/${UNKNOWN_DIGEST}`, status: 404, code: 'MANIFEST_UNKNOWN' },
    {
      name: 'GET of a manifest stored only in another repository',
      method: 'GET',
      path: `/v2/${OTHER}/manifests/${manifest.digest}`,
      status: 404,
      code: 'MANIFEST_UNKNOWN',
    },
    { name: 'DELETE of an unknown tag', method: 'DELETE', path: `/v2/${REPO}/manifests/nope`, status: 404, code: 'MANIFEST_UNKNOWN' },
    { name: 'DELETE of an unknown manifest digest', method: 'DELETE', path: `/v2/${REPO}/manifests/${UNKNOWN_DIGEST}`, status: 404, code: 'MANIFEST_UNKNOWN' },
    { name: 'manifest GET in an unknown repository', method: 'GET', path: `/v2/${EMPTY}/manifests/v1`, status: 404, code: 'NAME_UNKNOWN' },
    { name: 'tags list of an unknown repository', method: 'GET', path: `/v2/${EMPTY}/tags/list`, status: 404, code: 'NAME_UNKNOWN' },
    { name: 'GET of an unknown blob', method: 'GET', path: `/v2/${REPO}/blobs/${UNKNOWN_DIGEST}`, status: 404, code: 'BLOB_UNKNOWN' },
    { name: 'GET of a blob stored only in another repository', method: 'GET', path: `/v2/${EMPTY}/blobs/${layer.digest}`, status: 404, code: 'BLOB_UNKNOWN' },
    {
      name: 'ranged GET of a blob stored only in another repository',
      method: 'GET',
      path: `/v2/${OTHER}/blobs/${layer.digest}`,
      headers: { Range: 'bytes=0-1' },
      status: 404,
      code: 'BLOB_UNKNOWN',
    },
    { name: 'DELETE of an unknown blob', method: 'DELETE', path: `/v2/${REPO}/blobs/${UNKNOWN_DIGEST}`, status: 404, code: 'BLOB_UNKNOWN' },
  ];
}

function methodCases(): Case[] {
  const cases: Array<[string, string]> = [
    ['POST', `/v2/${REPO}/manifests/v1`],
    ['PATCH', `/v2/${REPO}/manifests/v1`],
    ['PATCH', `/v2/${REPO}/blobs/${layer.digest}`],
    ['PUT', `/v2/${REPO}/blobs/${layer.digest}`],
    ['POST', `/v2/${REPO}/blobs/${layer.digest}`],
    ['PUT', '/v2/'],
    ['POST', '/v2/'],
    ['DELETE', '/v2/'],
    ['DELETE', `/v2/${REPO}/tags/list`],
    ['POST', `/v2/${REPO}/tags/list`],
    ['PUT', `/v2/${REPO}/tags/list`],
    ['DELETE', '/v2/_catalog'],
    ['POST', '/v2/_catalog'],
    ['DELETE', `/v2/${REPO}/referrers/${manifest.digest}`],
    ['PUT', `/v2/${REPO}/referrers/${manifest.digest}`],
    ['POST', `/v2/${REPO}/blobs/uploads/{upload}`],
  ];
  return cases.map(([method, path]) => ({
    name: `${method} ${path.replace(REPO, '<name>').replace(/sha256:[0-9a-f]+/, '<digest>')}`,
    method,
    path,
    headers: octet,
    body: 'x',
    status: 405,
    code: 'UNSUPPORTED',
  }));
}

const CASES: Case[] = [
  ...nameCases(),
  ...tagCases(),
  ...digestCases(),
  ...lengthCases(),
  ...rangeCases(),
  ...paginationCases(),
  ...uploadIdCases(),
  ...manifestCases(),
  ...unknownCases(),
  ...methodCases(),
];

interface Snapshot {
  keys: string[];
  repositories: string[];
  tags: Record<string, string[]>;
  uploads: string[];
}

/** The malformed-request cases against a registry built from `options` (see test/helpers/matrix.ts). */
export function runBadInputSuite(name: string, options: () => Promise<TestRegistryOptions>): void {
  describe(`malformed requests (${name})`, () => {
    let reg: TestRegistry;
    let client: RegistryClient;
    let before1: Snapshot;

    async function snapshot(): Promise<Snapshot> {
      const keys: string[] = [];
      for (const prefix of ['blobs', 'uploads']) for await (const key of reg.driver.list(prefix)) keys.push(key);
      const repositories = await reg.metadata.listRepositories({});
      const tags: Record<string, string[]> = {};
      for (const repo of repositories) tags[repo] = await reg.metadata.listTags(repo, {});
      const uploads = (await reg.metadata.listStaleUploads(Number.MAX_SAFE_INTEGER, 10_000)).map((s) => s.id);
      return { keys: keys.sort(), repositories, tags, uploads: uploads.sort() };
    }

    async function newUpload(): Promise<string> {
      const res = await client.fetch(`/v2/${REPO}/blobs/uploads/`, { method: 'POST' });
      assert.equal(res.status, 202);
      return res.headers.get('docker-upload-uuid') as string;
    }

    /** Cancels an upload once no request holds it (a request cut off by the parser may still be writing). */
    async function cancelWhenIdle(upload: string): Promise<void> {
      const deadline = Date.now() + 5000;
      for (;;) {
        const res = await client.fetch(`/v2/${REPO}/blobs/uploads/${upload}`, { method: 'DELETE' });
        if (res.status === 204 || res.status === 404) return;
        assert.ok(Date.now() < deadline, `upload ${upload} still busy: ${res.status}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    }

    before(async () => {
      reg = await startTestRegistry(await options());
      client = new RegistryClient(reg.url);
      for (const b of [config, layer]) await client.pushBlob(REPO, b);
      await client.pushManifest(REPO, 'v1', manifest);
      await client.pushBlob(OTHER, otherBlob);
      before1 = await snapshot();
    });
    after(async () => reg?.close());

    it(`has at least 100 cases`, () => {
      assert.ok(CASES.length >= 100, `only ${CASES.length} cases`);
    });

    for (const c of CASES) {
      it(`${c.method} → ${c.status} ${c.code}: ${c.name}`, async () => {
        const upload = c.path.includes('{upload}') ? await newUpload() : undefined;
        try {
          const res = await rawRequest(reg.url, {
            method: c.method,
            path: c.path.replace('{upload}', upload ?? ''),
            headers: c.headers,
            body: c.body,
            chunked: c.chunked,
          });
          assert.ok(res, 'the server closed the connection without answering');
          const text = res.body.toString('utf8');
          assert.equal(res.status, c.status, `status ${res.status}, body ${text.slice(0, 300)}`);
          assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
          if (c.method === 'HEAD') return;
          assert.match(res.headers['content-type'] ?? '', /^application\/json/);
          const body = JSON.parse(text) as { errors?: Array<{ code?: unknown; message?: unknown }> };
          assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `no errors array in ${text.slice(0, 300)}`);
          const [error] = body.errors;
          assert.equal(error?.code, c.code, `message: ${String(error?.message)}`);
          assert.equal(typeof error?.message, 'string');
          assert.ok((error?.message as string).length >= 10, `message too terse to act on: ${String(error?.message)}`);
        } finally {
          if (upload) await client.fetch(`/v2/${REPO}/blobs/uploads/${upload}`, { method: 'DELETE' });
        }
      });
    }

    // Node's HTTP parser answers these itself (400, or a closed connection) before Berth sees a request;
    // see the report on server/app.ts's clientErrorHandler. What matters here: no 2xx, nothing stored.
    for (const [what, req] of [
      ['a request line with raw UTF-8 bytes', { method: 'GET', path: `/v2/${Buffer.from('café', 'utf8').toString('latin1')}/tags/list` }],
      [
        'a Content-Length past 2^64',
        {
          method: 'POST',
          path: `/v2/${REPO}/blobs/uploads/?digest=${payload.digest}`,
          headers: { ...octet, 'Content-Length': '99999999999999999999' },
          body: payload.data,
        },
      ],
      [
        'a monolithic POST whose Content-Length is shorter than the body',
        {
          method: 'POST',
          path: `/v2/${REPO}/blobs/uploads/?digest=${payload.digest}`,
          headers: { ...octet, 'Content-Length': String(payload.size - 5) },
          body: payload.data,
        },
      ],
      [
        'an upload PUT whose Content-Length is shorter than the body',
        {
          method: 'PUT',
          path: `/v2/${REPO}/blobs/uploads/{upload}?digest=${payload.digest}`,
          headers: { ...octet, 'Content-Length': String(payload.size - 1) },
          body: payload.data,
        },
      ],
    ] as const) {
      it(`refuses ${what}`, async () => {
        const upload = req.path.includes('{upload}') ? await newUpload() : undefined;
        const res = await rawRequest(reg.url, { ...req, path: req.path.replace('{upload}', upload ?? '') });
        if (res) assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
        if (upload) await cancelWhenIdle(upload);
      });
    }

    it('a body cut short of its Content-Length stores nothing', async () => {
      const res = await rawRequest(reg.url, {
        method: 'POST',
        path: `/v2/${REPO}/blobs/uploads/?digest=${payload.digest}`,
        headers: { ...octet, 'Content-Length': String(payload.size + 100) },
        body: payload.data,
        endEarly: true,
      });
      if (res) assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
      // The server learns of the cut asynchronously: wait (bounded) for its session to be discarded.
      const deadline = Date.now() + 5000;
      while ((await snapshot()).uploads.length > before1.uploads.length && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    });

    it('stored nothing: no new blob, manifest, tag, repository or upload', async () => {
      const now = await snapshot();
      assert.deepEqual(now, before1);
      for (const c of CASES) {
        if (c.body === undefined) continue;
        const d = sha256(c.body);
        for (const repo of [REPO, OTHER, EMPTY]) {
          if (repo === REPO && d === manifest.digest) continue;
          assert.equal(await reg.metadata.getBlobLink(repo, d), undefined, `${c.name}: blob linked in ${repo}`);
          assert.equal(await reg.metadata.getManifest(repo, d), undefined, `${c.name}: manifest stored in ${repo}`);
        }
      }
      assert.equal(await reg.metadata.repositoryExists(EMPTY), false);
    });
  });
}
