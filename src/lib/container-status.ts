/** `docker ps`'s STATUS column ("Up 5 minutes", "Exited (0) 2 hours ago"), from a container's state at a moment. */
import { humanDuration } from './units.js';

/** What the status text is made of: the engine has it in its record, the cluster manager from the node's report. */
export interface StatusFacts {
  Status: string;
  StartedAt: string;
  FinishedAt: string;
  ExitCode: number;
  Health?: string;
  HasBeenStarted: boolean;
}

export function statusText(st: StatusFacts, now = Date.now()): string {
  switch (st.Status) {
    case 'running':
      return `Up ${humanDuration(now - Date.parse(st.StartedAt))}${st.Health ? ` (${st.Health === 'starting' ? 'health: starting' : st.Health})` : ''}`;
    case 'paused':
      return `Up ${humanDuration(now - Date.parse(st.StartedAt))} (Paused)`;
    case 'restarting':
      return `Restarting (${st.ExitCode}) ${humanDuration(now - Date.parse(st.FinishedAt))} ago`;
    case 'exited':
      if (!st.HasBeenStarted && st.FinishedAt.startsWith('0001')) return 'Created';
      return `Exited (${st.ExitCode}) ${humanDuration(now - Date.parse(st.FinishedAt))} ago`;
    case 'removing':
      return 'Removal In Progress';
    case 'dead':
      return 'Dead';
    default:
      return 'Created';
  }
}
