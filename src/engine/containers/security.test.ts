import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DEFAULT_SECCOMP_PATH, parseSecurityOpts, toOciSeccomp, validateSysctls, type SeccompProfile } from './security.js';

test('toOciSeccomp honours caps and arches and picks the host archMap entry', () => {
  const p: SeccompProfile = {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 38,
    archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] }, { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] }],
    syscalls: [
      { names: ['read'], action: 'SCMP_ACT_ALLOW' },
      { names: ['mount'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
      { names: ['chroot'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, excludes: { caps: ['CAP_SYS_CHROOT'] } },
      { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['amd64', 'x32'] } },
      { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] },
    ],
  };
  const o = toOciSeccomp(p, ['CAP_SYS_CHROOT']) as { architectures: string[]; syscalls: Array<{ names: string[]; args?: unknown[] }>; defaultErrnoRet: number };
  const names = o.syscalls.flatMap((s) => s.names);
  assert.ok(names.includes('read'));
  assert.ok(!names.includes('mount'));
  assert.ok(!names.includes('chroot'));
  assert.equal(o.defaultErrnoRet, 38);
  assert.deepEqual(o.syscalls.find((s) => s.names[0] === 'personality')!.args, [{ index: 0, value: 8, valueTwo: 0, op: 'SCMP_CMP_EQ' }]);
  if (process.arch === 'x64') {
    assert.deepEqual(o.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    assert.ok(names.includes('arch_prctl'));
  }
  const admin = toOciSeccomp(p, ['CAP_SYS_ADMIN']) as { syscalls: Array<{ names: string[] }> };
  assert.ok(admin.syscalls.some((s) => s.names.includes('mount')));
  assert.ok(admin.syscalls.some((s) => s.names.includes('chroot')));
});

test('the containers-common profile converts', () => {
  const p = JSON.parse(readFileSync(DEFAULT_SECCOMP_PATH, 'utf8')) as SeccompProfile;
  const o = toOciSeccomp(p, ['CAP_CHOWN']) as { syscalls: Array<{ names: string[]; action: string }> };
  const allowed = new Set(o.syscalls.filter((s) => s.action === 'SCMP_ACT_ALLOW').flatMap((s) => s.names));
  assert.ok(allowed.has('read') && allowed.has('execve'));
  assert.ok(!allowed.has('init_module'));
});

test('security opts and sysctls follow Docker', () => {
  for (const o of ['no-new-privileges', 'no-new-privileges=true', 'no-new-privileges:true']) assert.equal(parseSecurityOpts([o]).noNewPrivileges, true);
  assert.equal(parseSecurityOpts(['no-new-privileges=false']).noNewPrivileges, false);
  assert.equal(parseSecurityOpts(['seccomp=unconfined']).seccomp, 'unconfined');
  assert.equal((parseSecurityOpts(['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']).seccomp as SeccompProfile).defaultAction, 'SCMP_ACT_ALLOW');
  assert.throws(() => parseSecurityOpts(['seccomp=not json']), /Decoding seccomp profile failed/);
  assert.throws(() => parseSecurityOpts(['what=ever']), /Invalid --security-opt/);
  assert.doesNotThrow(() => validateSysctls({ 'kernel.shmmax': '1', 'kernel.msgmax': '1', 'fs.mqueue.msg_max': '1', 'net.ipv4.ip_forward': '1' }, 'bridge'));
  assert.throws(() => validateSysctls({ 'net.ipv4.ip_forward': '1' }, 'host'), /host network namespace/);
  assert.throws(() => validateSysctls({ 'vm.swappiness': '1' }, 'bridge'), /not allowed/);
});
