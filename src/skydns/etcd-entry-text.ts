import { isUtf8 } from 'node:buffer';
import { SrvlinkError } from '../core/errors.js';

/** An etcd key and value as text, or why they cannot be read as a SkyDNS record. */
export interface EtcdEntryText {
  /** The key as UTF-8 text; a key that is not UTF-8 is written with `\xNN` for every byte outside printable ASCII. */
  key: string;
  value: string;
  /** Set when the key or the value is not UTF-8: the entry is one malformed record. */
  error?: SrvlinkError;
}

/**
 * etcd keys and values are bytes; SkyDNS names and JSON values are UTF-8
 * (RFC 8259 §8.1). Decoding invalid bytes leniently would turn them into
 * U+FFFD, so two different keys could become one name, or a value read as
 * something it does not say: instead such an entry is skipped and counted as
 * malformed, under a key text that stays the same for the same bytes (so its
 * deletion finds it) and shows which bytes are wrong.
 */
export function readEtcdEntry(key: Buffer, value: Buffer): EtcdEntryText {
  if (!isUtf8(key)) {
    const text = escapeBytes(key);
    return { key: text, value: '', error: new SrvlinkError('ERR_SKYDNS_RECORD', `cannot read skydns record at key "${text}": the key is not UTF-8`) };
  }
  const text = key.toString('utf8');
  if (!isUtf8(value)) {
    return { key: text, value: '', error: new SrvlinkError('ERR_SKYDNS_RECORD', `cannot read skydns record at key "${text}": the value is not UTF-8 (JSON text must be)`) };
  }
  return { key: text, value: value.toString('utf8') };
}

/** Printable ASCII as it is (a backslash doubled), every other byte as `\xNN`. */
function escapeBytes(bytes: Buffer): string {
  let text = '';
  for (const byte of bytes) {
    if (byte === 0x5c) text += '\\\\';
    else if (byte >= 0x20 && byte < 0x7f) text += String.fromCharCode(byte);
    else text += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return text;
}
