import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TestEngine, runCmd, type RunResult } from '../harness.js';

/** Compose v1 (Debian's docker-compose, on the Docker SDK for Python): a project of a server, a job and a client. */
const PROJECT = `
version: "3.8"
services:
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    volumes: ["data:/srv"]
    ports: ["8080"]
    environment:
      GREETING: hello
    labels:
      tier: front
  seed:
    image: busybox
    command: ["sh", "-c", "echo compose-ok > /srv/index.html"]
    volumes: ["data:/srv"]
  client:
    image: busybox
    depends_on: [web, seed]
    command: ["sh", "-c", "until wget -q -O - http://web:8080/index.html; do sleep 0.2; done"]
    logging:
      driver: json-file
      options:
        max-size: 1m
volumes:
  data: {}
`;

let e: TestEngine;
let dir: string;
before(async () => {
  e = await TestEngine.start();
  dir = path.join(e.dir, 'proj');
  await fs.mkdir(dir);
  await fs.writeFile(path.join(dir, 'docker-compose.yml'), PROJECT);
});
after(async () => {
  await e?.cleanup();
});

/**
 * Compose's default way to run and exec: through the docker CLI (`docker start --attach`). Its other way (dockerpty,
 * COMPOSE_INTERACTIVE_NO_CLI) attaches only after starting, so it loses the output of a command faster than that.
 */
const compose = (...args: string[]): Promise<RunResult> => runCmd('docker-compose', ['--project-directory', dir, '-f', path.join(dir, 'docker-compose.yml'), '-p', 'proj', ...args], { env: e.env, timeoutMs: 120_000 });

test('docker-compose up, ps, logs, exec, run, scale, a second up that changes nothing, down -v', async () => {
  const up = await compose('up', '-d');
  assert.equal(up.code, 0, up.stderr);
  assert.equal((await e.docker(['wait', 'proj_client_1'])).stdout.trim(), '0');
  assert.match((await compose('logs', '--no-color', 'client')).stdout, /compose-ok/);
  assert.equal((await compose('exec', '-T', 'web', 'sh', '-c', 'echo $GREETING')).stdout.trim(), 'hello');
  assert.equal((await compose('run', '--rm', 'client', 'wget', '-q', '-O', '-', 'http://web:8080/')).stdout.trim(), 'compose-ok');
  assert.equal((await e.docker(['ps', '--filter', 'label=tier=front', '--format', '{{.Names}}'])).stdout.trim(), 'proj_web_1');

  // the project's network and containers match its file: nothing is recreated
  const again = await compose('up', '-d');
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /proj_web_1 is up-to-date/);
  assert.doesNotMatch(again.stderr, /needs to be recreated|Recreating/);

  const scaled = await compose('up', '-d', '--scale', 'web=2');
  assert.equal(scaled.code, 0, scaled.stderr);
  const webs = (await compose('ps', '-q', 'web')).stdout.split('\n').filter(Boolean);
  assert.equal(webs.length, 2);

  const down = await compose('down', '-v', '-t', '1');
  assert.equal(down.code, 0, down.stderr);
  assert.equal((await e.docker(['ps', '-aq'])).stdout.trim(), '');
  assert.doesNotMatch((await e.docker(['network', 'ls', '--format', '{{.Name}}'])).stdout, /proj_default/);
  assert.doesNotMatch((await e.docker(['volume', 'ls', '--format', '{{.Name}}'])).stdout, /proj_data/);
});
