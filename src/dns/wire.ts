/** Numbers of the DNS wire format that the codec and the byte-level readers and writers share. */

/** RFC 1035 §4.1.1: the header is 12 bytes. */
export const HEADER_LENGTH = 12;
/** RFC 1035 §4.2.2: a TCP message is at most 65,535 bytes (its length is 16 bits). */
export const MAX_MESSAGE_SIZE = 0xffff;
/** RFC 1035 §4.1.1: the TC (truncated) bit of the header's flags word. */
export const TC_BIT = 0x0200;
/** RFC 6891 §6.1.1: the OPT pseudo-record's type. */
export const OPT_TYPE = 41;
