import { SrvlinkError, errorMessage } from './errors.js';

/** A failed bind, told the way an operator can act on it. */
export function listenError(address: string, err: unknown): SrvlinkError {
  const code = (err as NodeJS.ErrnoException).code;
  const hint =
    code === 'EADDRINUSE'
      ? ': the port is already in use'
      : code === 'EACCES'
        ? ': ports below 1024 need root or CAP_NET_BIND_SERVICE'
        : code === 'EADDRNOTAVAIL'
          ? ': no interface has this address'
          : `: ${errorMessage(err)}`;
  return new SrvlinkError('ERR_LISTEN', `cannot listen on "${address}"${hint}`, { cause: err });
}
