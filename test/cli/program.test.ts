import { describe, expect, it } from 'vitest';
import { runSrvlink } from '../helpers/srvlink-process.js';

const COMMANDS = ['run', 'register', 'dns', 'resolve', 'status'];

// The program builds only the command named on the line; everything that needs the others still has them.
describe('srvlink: the program and its commands', () => {
  it('lists every command in --help and with no command at all', async () => {
    const help = await runSrvlink(['--help']);
    expect(help.code).toBe(0);
    for (const command of COMMANDS) expect(help.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    const none = await runSrvlink([]);
    expect(none.code).toBe(2);
    expect(none.lines[0]).toMatchObject({ msg: 'missing command' });
    for (const command of COMMANDS) expect(String(none.lines[0]?.usage)).toMatch(new RegExp(`^  ${command} `, 'm'));
  });

  it.each(COMMANDS)('shows the help of %s through "help" and through its own --help alike', async (command) => {
    const viaHelp = await runSrvlink(['help', command]);
    const own = await runSrvlink([command, '--help']);
    expect(viaHelp.code).toBe(0);
    expect(own.code).toBe(0);
    expect(viaHelp.stdout).toBe(own.stdout);
    expect(own.stdout).toMatch(new RegExp(`^Usage: srvlink ${command} `));
  });

  it('suggests the nearest command for a mistyped one, and prints its version', async () => {
    const typo = await runSrvlink(['regster', '--etcd', 'http://127.0.0.1:1']);
    expect(typo.code).toBe(2);
    expect(typo.messages).toBe("unknown command 'regster'\n(Did you mean register?)");
    const version = await runSrvlink(['--version']);
    expect(version).toMatchObject({ code: 0, stdout: '0.1.0\n' });
  });
});
