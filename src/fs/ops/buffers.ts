/**
 * Reusable buffers for read and write, so that the data path allocates
 * nothing per request (a fresh 128 KiB Buffer per FUSE request cost 14% of
 * the mount's time in GC).
 *
 * Why not hand FUSE's own buffer to the storage call: libfuse frees it as
 * soon as the request is answered, and a storage call that timed out (a hung
 * NFS node; the read fails over meanwhile) still completes later on its
 * thread, reading or writing that memory. So storage calls only ever get
 * memory the mount owns, and a buffer whose call may still be running is
 * never taken back into the pool (it is left to the GC, which frees it only
 * once the call has let go of it).
 */

export class BufferPool {
  private readonly free: Buffer[] = [];

  /** @param size bytes per pooled buffer (larger requests get a buffer of their own); @param keep buffers kept when idle */
  constructor(
    readonly size: number,
    private readonly keep: number,
  ) {}

  /** A buffer of `length` bytes, owned by the caller until `give`. */
  take(length: number): Buffer {
    if (length > this.size) return Buffer.allocUnsafeSlow(length);
    return (this.free.pop() ?? Buffer.allocUnsafeSlow(this.size)).subarray(0, length);
  }

  /** Return a buffer from `take` (only once no storage call can touch it any more). */
  give(buf: Buffer): void {
    if (buf.byteOffset !== 0 || buf.buffer.byteLength !== this.size || this.free.length >= this.keep) return;
    this.free.push(Buffer.from(buf.buffer, 0, this.size));
  }
}

/** FUSE requests carry at most 128 KiB (max_read / max_write of libfuse 2). */
export const ioBuffers = new BufferPool(128 * 1024, 64);
