import { z } from 'zod';
import { invalid } from '../../lib/errors.js';

const strArr = z.array(z.string()).nullish();
const strMap = z.record(z.string(), z.string()).nullish();
const objMap = z.record(z.string(), z.any()).nullish();

/** Types of the create body's fields; unknown fields pass through, as with Docker. */
export const HostConfigSchema = z.looseObject({
  Binds: strArr,
  NetworkMode: z.string().nullish(),
  PortBindings: z.record(z.string(), z.array(z.looseObject({ HostIp: z.string().nullish(), HostPort: z.string().nullish() })).nullish()).nullish(),
  RestartPolicy: z.looseObject({ Name: z.string().nullish(), MaximumRetryCount: z.number().int().nullish() }).nullish(),
  AutoRemove: z.boolean().nullish(),
  CapAdd: strArr,
  CapDrop: strArr,
  Dns: strArr,
  DnsOptions: strArr,
  DnsSearch: strArr,
  ExtraHosts: strArr,
  Privileged: z.boolean().nullish(),
  ReadonlyRootfs: z.boolean().nullish(),
  SecurityOpt: strArr,
  Tmpfs: strMap,
  ShmSize: z.number().int().nonnegative().nullish(),
  Init: z.boolean().nullish(),
  Mounts: z.array(z.looseObject({ Type: z.string(), Source: z.string().nullish(), Target: z.string(), ReadOnly: z.boolean().nullish() })).nullish(),
  Memory: z.number().int().nonnegative().nullish(),
  NanoCpus: z.number().int().nonnegative().nullish(),
  CpuShares: z.number().int().nonnegative().nullish(),
  PidsLimit: z.number().int().nullish(),
  MemorySwap: z.number().int().min(-1).nullish(),
  MemoryReservation: z.number().int().nonnegative().nullish(),
  MemorySwappiness: z.number().int().nullish(),
  CpuPeriod: z.number().int().nonnegative().nullish(),
  CpuQuota: z.number().int().min(-1).nullish(),
  CpusetCpus: z.string().nullish(),
  CpusetMems: z.string().nullish(),
  BlkioWeight: z.number().int().nonnegative().nullish(),
  CgroupParent: z.string().nullish(),
  BlkioDeviceReadBps: z.array(z.looseObject({ Path: z.string(), Rate: z.number().int().nonnegative() })).nullish(),
  BlkioDeviceWriteBps: z.array(z.looseObject({ Path: z.string(), Rate: z.number().int().nonnegative() })).nullish(),
  BlkioDeviceReadIOps: z.array(z.looseObject({ Path: z.string(), Rate: z.number().int().nonnegative() })).nullish(),
  BlkioDeviceWriteIOps: z.array(z.looseObject({ Path: z.string(), Rate: z.number().int().nonnegative() })).nullish(),
  Ulimits: z.array(z.looseObject({ Name: z.string(), Soft: z.number().int(), Hard: z.number().int() })).nullish(),
  OomScoreAdj: z.number().int().nullish(),
  Sysctls: strMap,
  Devices: z.array(z.looseObject({ PathOnHost: z.string(), PathInContainer: z.string().nullish(), CgroupPermissions: z.string().nullish() })).nullish(),
  LogConfig: z.looseObject({ Type: z.string().nullish(), Config: strMap }).nullish(),
});

export const CreateBodySchema = z.looseObject({
  Hostname: z.string().nullish(),
  Domainname: z.string().nullish(),
  User: z.string().nullish(),
  AttachStdin: z.boolean().nullish(),
  AttachStdout: z.boolean().nullish(),
  AttachStderr: z.boolean().nullish(),
  ExposedPorts: objMap,
  Tty: z.boolean().nullish(),
  OpenStdin: z.boolean().nullish(),
  StdinOnce: z.boolean().nullish(),
  Env: strArr,
  Cmd: z.union([z.array(z.string()), z.string()]).nullish(),
  Healthcheck: z.looseObject({ Test: strArr, Interval: z.number().int().nullish(), Timeout: z.number().int().nullish(), StartPeriod: z.number().int().nullish(), StartInterval: z.number().int().nullish(), Retries: z.number().int().nullish() }).nullish(),
  Image: z.string().min(1, 'Image is required'),
  Volumes: objMap,
  WorkingDir: z.string().nullish(),
  Entrypoint: z.union([z.array(z.string()), z.string()]).nullish(),
  Labels: strMap,
  StopSignal: z.string().nullish(),
  StopTimeout: z.number().int().nullish(),
  Rich: z.boolean().nullish(),
  RichMode: z.string().nullish(),
  InitScript: z.string().nullish(),
  HostConfig: HostConfigSchema.nullish(),
  NetworkingConfig: z.looseObject({}).nullish(),
});

export type CreateBody = z.infer<typeof CreateBodySchema>;

export function parseBody<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  if (body === undefined || body === null) throw invalid(`${what}: request body is empty`);
  const r = schema.safeParse(body);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const where = issue.path.join('.') || 'body';
    throw invalid(`${what}: invalid ${where}: ${issue.message}`);
  }
  return r.data;
}
