import { randomBytes } from 'node:crypto';

export function newId(): string {
  return randomBytes(32).toString('hex');
}

const LEFT = ['admiring', 'agile', 'bold', 'brave', 'calm', 'clever', 'eager', 'fervent', 'gentle', 'happy', 'jolly', 'keen', 'lucid', 'modest', 'nimble', 'quiet', 'sharp', 'steady', 'swift', 'vivid', 'witty', 'zen'];
const RIGHT = ['bohr', 'curie', 'darwin', 'euler', 'fermi', 'gauss', 'hopper', 'kepler', 'lamport', 'lovelace', 'noether', 'pascal', 'ritchie', 'shannon', 'thompson', 'turing', 'wozniak', 'yalow'];

export function randomName(): string {
  const pick = (a: string[]) => a[randomBytes(1)[0]! % a.length]!;
  return `${pick(LEFT)}_${pick(RIGHT)}`;
}

/** Container and volume names as Docker accepts them. */
export const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
