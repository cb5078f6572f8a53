/**
 * Wrap a Network (a real one from hal/node, in the simulator) so that every
 * callback into the device runs under `VirtualDevice.guard`: a reset caused
 * while handling a real socket event reboots the virtual device instead of
 * escaping into the host's event loop. Sockets opened before a reset are
 * closed when the device boots again (a real reset drops every connection).
 */
import type { Network, Socket, SocketHandlers, SocketOptions } from "../../hal/types";
import type { VirtualDevice } from "./device";

export function guardedNetwork(inner: Network, device: VirtualDevice): Network & { closeAll(): void } {
  let open: Socket[] = [];
  let generation = 0;
  return {
    connect(options: SocketOptions, handlers: SocketHandlers): Socket {
      const born = generation;
      const live = () => born === generation;
      const wrapped: SocketHandlers = {
        onConnect: () => live() && device.guard(() => handlers.onConnect?.()),
        onData: (d) => live() && device.guard(() => handlers.onData?.(d)),
        onClose: (r) => live() && device.guard(() => handlers.onClose?.(r)),
      };
      const s = inner.connect(options, wrapped);
      open.push(s);
      return s;
    },
    closeAll(): void {
      generation++;
      for (const s of open) s.close();
      open = [];
    },
  };
}
