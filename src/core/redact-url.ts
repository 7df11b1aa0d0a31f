/**
 * User information in a URL (RFC 3986 §3.2.1), which holds `user:password`
 * or a token and never belongs in a log: after `scheme://` anything up to
 * `@`; after a bare `scheme:` (gRPC's `dns:user:pw@host:port` targets, as
 * etcd's client quotes them in errors) only the `user:password` form.
 */
const USERINFO = /([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#\s@"']*@|([A-Za-z][A-Za-z0-9+.-]*:)[^/?#\s@:"']+:[^/?#\s@"']*@/g;

/**
 * `text` with the credentials of every URL in it stripped
 * (`http://user:secret@10.0.0.5:2379` → `http://10.0.0.5:2379`): for URLs
 * the user typed (`--etcd`) and messages that quote them. The logger applies
 * it to every string it writes, so a library's error that quotes a URL is
 * covered too.
 */
export function redactUrl(text: string): string {
  // Cheap test first: the logger calls this for every string field.
  if (!text.includes('@')) return text;
  return text.replace(USERINFO, (_match, withSlashes: string | undefined, bare: string | undefined) => withSlashes ?? bare ?? '');
}
