import type { ContainerRecord } from '../containers/model.js';
import type { ContainerNet } from './model.js';

/**
 * What the container service needs of networking: a container's namespace and endpoints at start and their end at
 * exit, and the lines of its hosts and resolv.conf files. service.ts implements it with CNI; engine.ts wires it.
 */
export interface NetworkProvider {
  /** At create: the networks named exist and the endpoint settings are valid. */
  checkCreate(rec: ContainerRecord): void;
  /** Before the runtime creates the container: its namespace with its endpoints (undefined: none is made). */
  attach(rec: ContainerRecord): Promise<ContainerNet | undefined>;
  /** At exit, failed start and rm: the endpoints and the namespace go. */
  detach(rec: ContainerRecord): Promise<void>;
  /** /etc/hosts lines for the container's own addresses and its peers. */
  hostsLines(rec: ContainerRecord, state: ContainerNet | undefined): string[];
  /** The container's resolv.conf where networking decides it (an embedded DNS); undefined keeps `hostConf`. */
  resolvConf(rec: ContainerRecord, hostConf: string): string | undefined;
  /** After start: running peers learn the new container's name (hostsPathOf: a container's hosts file). */
  announce(rec: ContainerRecord, hostsPathOf: (id: string) => string): Promise<void>;
}
