import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DockerIgnore } from './dockerignore.js';

/**
 * Take out of an unpacked context what its .dockerignore excludes (the CLI does it before sending too; other
 * clients may not). The Dockerfile has been read by then: an ignored Dockerfile is only kept from COPY.
 */
export async function applyDockerignore(dir: string): Promise<void> {
  const text = await fs.readFile(path.join(dir, '.dockerignore'), 'utf8').catch(() => undefined);
  if (text === undefined) return;
  const ig = DockerIgnore.parse(text);
  const walk = async (rel: string): Promise<void> => {
    for (const name of await fs.readdir(path.join(dir, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(dir, r);
      const st = await fs.lstat(abs);
      if (ig.ignores(r)) {
        if (st.isDirectory() && ig.mustWalk(r)) await walk(r).then(() => removeEmptyIgnored(abs));
        else await fs.rm(abs, { recursive: true, force: true });
      } else if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
}

/** An ignored directory walked for exceptions stays only if something inside it was kept. */
async function removeEmptyIgnored(abs: string): Promise<void> {
  if ((await fs.readdir(abs)).length === 0) await fs.rmdir(abs);
}
