// Payload bytes -> typed arrays. A payload is inflated only when its bytes start with
// the gzip magic (1f 8b), never because of its name: a server that sends `.gz` files with
// `Content-Encoding: gzip` has the browser inflate them already, one that sends them raw
// leaves it to us, and both must work.

/** @typedef {Uint8Array|Uint16Array|Uint32Array|Float32Array|Float64Array} TypedArray */

export const TYPED = {
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
};

/** @param {Uint8Array} bytes */
export function isGzip(bytes) {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Inflate gzip bytes with the browser's DecompressionStream, stopping once more than
 * `limit` bytes come out (a gzip bomb never fills the memory).
 * @param {Uint8Array} bytes
 * @param {number} limit  largest inflated size accepted
 * @param {string} label  the file, for errors
 * @returns {Promise<Uint8Array>}
 */
export async function inflate(bytes, limit, label) {
  if (typeof DecompressionStream === "undefined") throw new Error(`this browser cannot inflate ${label} (no DecompressionStream)`);
  const stream = new Blob([/** @type {BlobPart} */ (/** @type {unknown} */ (bytes))]).stream().pipeThrough(new DecompressionStream("gzip"));
  const reader = stream.getReader();
  const chunks = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) {
        await reader.cancel();
        throw new Error(`${label} inflates to more than the ${limit} bytes its manifest describes`);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (/inflates to more/.test(err.message)) throw err;
    throw new Error(`${label} is not valid gzip: ${err.message}`);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

/**
 * Decode one payload: inflate if gzip, then view it as `count` values of `dtype`.
 * @param {ArrayBuffer|Uint8Array} data
 * @param {string} dtype   uint8, uint16, uint32, float32 or float64
 * @param {number} count   expected number of values
 * @param {string} label   the file, for errors
 * @returns {Promise<TypedArray>}
 */
export async function decodePayload(data, dtype, count, label) {
  const Typed = TYPED[dtype];
  if (!Typed) throw new Error(`${label}: dtype '${dtype}' is not one of ${Object.keys(TYPED).join(", ")}`);
  const expected = count * Typed.BYTES_PER_ELEMENT;
  let bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (isGzip(bytes)) bytes = await inflate(bytes, expected, label);
  if (bytes.byteLength !== expected) {
    throw new Error(`${label} holds ${bytes.byteLength} bytes, expected ${expected} (${count} ${dtype} values)`);
  }
  if (bytes.byteOffset % Typed.BYTES_PER_ELEMENT !== 0) bytes = bytes.slice();
  return new Typed(bytes.buffer, bytes.byteOffset, count);
}
