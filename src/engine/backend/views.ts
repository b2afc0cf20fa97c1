import path from 'node:path';
import { statusText, type StatusFacts } from '../../lib/container-status.js';
import type { ContainerConfig, ContainerRecord, HostConfig } from '../containers/model.js';
import type { ContainerInspect, ContainerSummary, HistoryItem, ImageInspect, ImageSummary, MountPointView } from '../../lib/docker-types.js';
import type { Image } from '../images/store.js';
import type { HistoryEntry } from '../../lib/oci.js';
import { containerNetworks, portMap, portSummary, primaryEndpoint } from './netviews.js';

/** The facts `docker ps`'s status text is made of (the node agent reports them to the cluster manager too). */
export function statusFacts(r: ContainerRecord): StatusFacts {
  const st = r.State;
  return { Status: st.Status, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt, ExitCode: st.ExitCode, Health: st.Health?.Status, HasBeenStarted: !!r.HasBeenStarted };
}

const networks = containerNetworks;

function mountView(m: ContainerRecord['Mounts'][number]): MountPointView {
  return {
    Type: m.Type,
    ...(m.Name ? { Name: m.Name } : {}),
    Source: m.Source,
    Destination: m.Destination,
    ...(m.Driver ? { Driver: m.Driver } : {}),
    Mode: m.Mode,
    RW: m.RW,
    Propagation: m.Propagation,
  };
}

export function containerSummary(r: ContainerRecord, imageName: string): ContainerSummary {
  return {
    Id: r.Id,
    Names: [`/${r.Name}`],
    Image: imageName,
    ImageID: r.Image,
    Command: [r.Path, ...r.Args].map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' '),
    Created: Math.floor(Date.parse(r.Created) / 1000),
    Ports: portSummary(r),
    Labels: r.Config.Labels ?? {},
    State: r.State.Status === 'exited' && !r.HasBeenStarted && r.State.FinishedAt.startsWith('0001') ? 'created' : r.State.Status,
    Status: statusText(statusFacts(r)),
    HostConfig: { NetworkMode: r.HostConfig.NetworkMode },
    NetworkSettings: { Networks: networks(r) },
    Mounts: r.Mounts.map(mountView),
  };
}

export function containerInspect(r: ContainerRecord, dirs: { dir: string; fs: string; lowers: string[] }, execIds: string[]): ContainerInspect<ContainerConfig, HostConfig> {
  const st = r.State;
  const status = st.Status === 'exited' && !r.HasBeenStarted && st.FinishedAt.startsWith('0001') ? 'created' : st.Status;
  const ep = primaryEndpoint(r);
  return {
    Id: r.Id,
    Created: r.Created,
    Path: r.Path,
    Args: r.Args,
    State: {
      Status: status,
      Running: st.Status === 'running' || st.Status === 'paused',
      Paused: st.Status === 'paused',
      Restarting: st.Status === 'restarting',
      OOMKilled: st.OOMKilled,
      Dead: st.Status === 'dead',
      Pid: st.Pid,
      ExitCode: st.ExitCode,
      Error: st.Error,
      StartedAt: st.StartedAt,
      FinishedAt: st.FinishedAt,
      ...(st.Health ? { Health: st.Health } : {}),
    },
    Image: r.Image,
    ResolvConfPath: path.join(dirs.dir, 'resolv.conf'),
    HostnamePath: path.join(dirs.dir, 'hostname'),
    HostsPath: path.join(dirs.dir, 'hosts'),
    LogPath: path.join(dirs.dir, 'container.log'),
    Name: `/${r.Name}`,
    RestartCount: r.RestartCount,
    Driver: 'overlay2',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: execIds.length ? execIds : null,
    HostConfig: r.HostConfig,
    GraphDriver: {
      Name: 'overlay2',
      Data: {
        LowerDir: dirs.lowers.join(':'),
        MergedDir: path.join(dirs.fs, 'merged'),
        UpperDir: path.join(dirs.fs, 'upper'),
        WorkDir: path.join(dirs.fs, 'work'),
      },
    },
    Mounts: r.Mounts.map(mountView),
    Config: r.Config,
    NetworkSettings: {
      Bridge: '',
      SandboxID: '',
      SandboxKey: ep.SandboxKey || (st.Pid ? `/proc/${st.Pid}/ns/net` : ''),
      Ports: portMap(r),
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      EndpointID: ep.EndpointID,
      Gateway: ep.Gateway,
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: ep.IPAddress,
      IPPrefixLen: ep.IPPrefixLen,
      IPv6Gateway: '',
      MacAddress: ep.MacAddress,
      Networks: networks(r),
    },
  };
}

export function imageSummary(i: Image): ImageSummary {
  return {
    Id: i.id,
    ParentId: i.parent ?? '',
    RepoTags: i.repoTags,
    RepoDigests: i.repoDigests,
    Created: Math.floor(Date.parse(i.created) / 1000),
    Size: i.size,
    SharedSize: -1,
    Labels: i.config.config?.Labels ?? {},
    Containers: -1,
  };
}

export function imageInspect(i: Image, lowers: string[]): ImageInspect {
  const c = i.config;
  return {
    Id: i.id,
    RepoTags: i.repoTags,
    RepoDigests: i.repoDigests,
    Parent: i.parent ?? '',
    Comment: c.comment ?? c.history?.[c.history.length - 1]?.comment ?? '',
    Created: i.created,
    DockerVersion: '',
    Author: c.author ?? '',
    Config: {
      Hostname: '', Domainname: '', User: '', AttachStdin: false, AttachStdout: false, AttachStderr: false, Tty: false, OpenStdin: false, StdinOnce: false,
      Env: null, Cmd: null, Image: '', Volumes: null, WorkingDir: '', Entrypoint: null, OnBuild: null, Labels: null,
      ...(c.config ?? {}),
    },
    Architecture: c.architecture,
    ...(c.variant ? { Variant: c.variant } : {}),
    Os: c.os,
    Size: i.size,
    GraphDriver: { Name: 'overlay2', Data: { LowerDir: lowers.join(':') } },
    RootFS: { Type: 'layers', Layers: c.rootfs.diff_ids },
    Metadata: { LastTagTime: i.loadedAt },
  };
}

/**
 * `docker history`: newest entry first. As Docker, the rows take the IDs (and tags) of the image and then of its
 * parents in turn where they exist here (`byId`), `<missing>` beyond.
 */
export function imageHistory(i: Image, byId: (id: Image['id']) => Image | undefined = () => undefined): HistoryItem[] {
  const hist: HistoryEntry[] = i.config.history?.length ? i.config.history : i.layers.map(() => ({ created: i.created, created_by: '' }));
  let layer = 0;
  const rows = hist.map((h) => {
    const size = h.empty_layer ? 0 : (i.layers[layer++]?.size ?? 0);
    return { Id: '<missing>', Created: Math.floor(Date.parse(h.created ?? i.created) / 1000), CreatedBy: h.created_by ?? '', Tags: null as string[] | null, Size: size, Comment: h.comment ?? '' };
  });
  rows.reverse();
  let cur: Image | undefined = i;
  for (const row of rows) {
    if (!cur) break;
    row.Id = cur.id;
    row.Tags = cur.repoTags.length ? cur.repoTags : null;
    cur = cur.parent ? byId(cur.parent) : undefined;
  }
  return rows;
}

