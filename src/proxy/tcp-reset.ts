import type { Socket } from 'node:net';

/**
 * Close with a TCP RST when possible, else plainly: the peer must see that
 * its stream was cut, not take a FIN for the end of a complete one.
 *
 * Not while a shutdown is in flight (`end()` called, every write done, the
 * FIN not yet sent: libuv sends it on the loop's next turn). libuv refuses
 * to reset a socket then (EINVAL), and Node 20 still marks the handle as
 * closing: no 'close' ever comes, the descriptor stays open, and the
 * process spins at exit waiting for that handle. So the reset waits for the
 * FIN to be sent (or the shutdown to fail, which closes the socket).
 */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (shutdownInFlight(socket)) {
    socket.once('finish', () => resetSocket(socket));
    return;
  }
  try {
    socket.resetAndDestroy();
  } catch {
    // Not a TCP handle (a seam may dial a Unix socket): no RST to send.
    socket.destroy();
  }
}

/** `end()` called and nothing left to write: the shutdown is asked for (or is about to be) and not done. */
function shutdownInFlight(socket: Socket): boolean {
  return socket.writableEnded && !socket.writableFinished && socket.writableLength === 0 && !socket.connecting;
}

/**
 * Whether the 'end' just seen on `socket` was really a reset. libuv (Node 20)
 * takes a poll that says "hang-up" after a short read for the end of the
 * stream, and skips the read that would have returned ECONNRESET: a reset
 * right behind data reads as a FIN. The socket's TCP state tells them apart
 * while our own side is still open: a FIN leaves it in CLOSE_WAIT, with a
 * peer name; a reset moves it to CLOSE, where getpeername(2) fails. After our
 * own FIN both end in CLOSE, so then the 'end' is taken as it comes.
 */
export function endWasReset(socket: Socket): boolean {
  if (socket.writableEnded || socket.destroyed) return false;
  const handle = (socket as unknown as { _handle?: { getpeername?: (out: object) => number } | null })._handle;
  if (typeof handle?.getpeername !== 'function') return false;
  return handle.getpeername({}) !== 0;
}
