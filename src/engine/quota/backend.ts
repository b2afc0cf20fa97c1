/** The interface both disk-quota implementations (btrfs.ts, ext4image.ts) provide; DiskQuotas picks one per root. */
/** A directory whose contents cannot grow past a size: a container's writable layer or a volume. */
export interface QuotaBackend {
  readonly kind: 'btrfs' | 'ext4-image';
  /** Make `dir` (which must not exist yet) a directory limited to `bytes`. */
  create(dir: string, bytes: number): Promise<void>;
  /** Raise the limit of a directory made by create; `inUse` when a running container has it. */
  grow(dir: string, bytes: number, inUse: boolean): Promise<void>;
  /** Make it usable again where a host reboot undid a mount; cheap when nothing is to do. */
  ensure(dir: string): Promise<void>;
  /** Undo create; `dir` is gone afterwards. Anything mounted below it must be unmounted first. */
  remove(dir: string): Promise<void>;
}
