// Minimal types for the parts of @agoric/xsnap the XS lane uses.
declare module "@agoric/xsnap" {
  export interface RunResult {
    reply: Uint8Array;
    meterUsage: { compute: number | null; allocate: number | null; currentHeapCount: number | null };
  }
  export interface XSnap {
    evaluate(code: string): Promise<RunResult>;
    issueCommand(message: Uint8Array): Promise<RunResult>;
    close(): Promise<void>;
  }
  export function xsnap(options: unknown): Promise<XSnap>;
}
