// Wire format shared by the comm and HTTP transports (see cellucid_nb/viewer_protocol.py for the
// full protocol). A response is a JSON header plus one binary blob; the header's
// `arrays` list says where each typed array sits in the blob.

export const MESSAGE_PREFIX = "viewer:";
/** Magic bytes of an HTTP framed response: "CLNB". */
export const FRAME_MAGIC = 0x424e4c43;

/** @typedef {Uint8Array|Uint16Array|Uint32Array|Int32Array|Float32Array|Float64Array} TypedArray */

const TYPED = {
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
};

/**
 * Cut a blob into the typed arrays its header describes.
 * @param {object} header  {arrays: [{name, dtype, shape, offset, nbytes}]}
 * @param {ArrayBuffer} buffer
 * @param {number} [base=0] byte offset of the blob inside `buffer`
 * @returns {Object<string, TypedArray>}
 */
export function arraysFromBlob(header, buffer, base = 0) {
  /** @type {Object<string, TypedArray>} */
  const out = {};
  for (const spec of header.arrays || []) {
    const Typed = TYPED[spec.dtype];
    if (!Typed) throw new Error(`array '${spec.name}' has dtype '${spec.dtype}', expected one of ${Object.keys(TYPED).join(", ")}`);
    const start = base + spec.offset;
    if (start % Typed.BYTES_PER_ELEMENT !== 0) {
      // Misaligned views are illegal: copy (the backend aligns to 8, so this is rare).
      out[spec.name] = new Typed(buffer.slice(start, start + spec.nbytes));
    } else {
      out[spec.name] = new Typed(buffer, start, spec.nbytes / Typed.BYTES_PER_ELEMENT);
    }
  }
  return out;
}

/**
 * Parse an HTTP framed response: "CLNB", u32 header length, header JSON, padding to 8, blob.
 * @param {ArrayBuffer} buffer
 * @returns {{header: object, arrays: Object<string, TypedArray>}}
 */
export function parseFramed(buffer) {
  if (buffer.byteLength < 8) throw new Error(`framed response has ${buffer.byteLength} bytes, expected at least 8`);
  const view = new DataView(buffer);
  if (view.getUint32(0, true) !== FRAME_MAGIC) throw new Error("framed response does not start with 'CLNB'");
  const headerLength = view.getUint32(4, true);
  const headerText = new TextDecoder().decode(new Uint8Array(buffer, 8, headerLength));
  const header = JSON.parse(headerText);
  const base = Math.ceil((8 + headerLength) / 8) * 8;
  return { header, arrays: arraysFromBlob(header, buffer, base) };
}

/** Copy a DataView / TypedArray / ArrayBuffer into a Uint8Array view (no copy when possible). */
export function asBytes(buf) {
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  throw new Error(`expected a binary buffer, got ${typeof buf}`);
}
