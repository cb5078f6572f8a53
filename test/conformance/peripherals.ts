/**
 * Conformance suites for the small peripherals: Clock, Watchdog,
 * MonotonicCounter, Digest, Serial, Network, Power. Each takes a `make`
 * that returns the implementation plus the test's handles on it (how to let
 * time pass, how to talk to the far end); a device run supplies real ones.
 */
import type { Clock, Digest, MonotonicCounter, Network, Power, Serial, SocketHandlers, Watchdog } from "../../hal/types";
import { OtaError, Reason } from "../../src/errors";
import { assert, suite, type Suite } from "../lib/spec";

const code = (c: number) => (e: unknown) => e instanceof OtaError && e.code === c;

export function clockConformance(o: { name: string; make: () => { clock: Clock; advance: (ms: number) => void } }): Suite {
  return suite(`Clock conformance: ${o.name}`, (it) => {
    it("now() never decreases and timers fire in deadline order", () => {
      const { clock, advance } = o.make();
      const fired: string[] = [];
      const t0 = clock.now();
      clock.setTimer(() => fired.push("b"), 20);
      clock.setTimer(() => fired.push("a"), 10);
      const c = clock.setTimer(() => fired.push("cancelled"), 15);
      clock.clearTimer(c);
      advance(25);
      assert.equal(fired.join(","), "a,b");
      assert.ok(clock.now() >= t0 + 25, "time advanced");
    });
    it("a repeating timer fires once per period", () => {
      const { clock, advance } = o.make();
      let n = 0;
      const id = clock.setTimer(() => n++, 10, 10);
      advance(55);
      clock.clearTimer(id);
      advance(50);
      assert.equal(n, 5);
    });
    it("a timer set with 0 ms does not fire inside setTimer", () => {
      const { clock, advance } = o.make();
      let fired = false;
      clock.setTimer(() => (fired = true), 0);
      assert.equal(fired, false);
      advance(0);
      assert.equal(fired, true);
    });
  });
}

export function watchdogConformance(o: {
  name: string;
  make: () => { watchdog: Watchdog; advance: (ms: number) => void; expired: () => boolean };
}): Suite {
  return suite(`Watchdog conformance: ${o.name}`, (it) => {
    it("fed in time it never expires", () => {
      const { watchdog, advance, expired } = o.make();
      watchdog.start(100);
      for (let i = 0; i < 50; i++) {
        advance(90);
        watchdog.feed();
      }
      assert.equal(expired(), false);
    });
    it("not fed it expires after its timeout", () => {
      const { watchdog, advance, expired } = o.make();
      watchdog.start(100);
      advance(99);
      assert.equal(expired(), false);
      advance(2);
      assert.equal(expired(), true);
    });
    it("refuses a timeout out of range with BAD_ARGUMENT", () => {
      const { watchdog } = o.make();
      assert.throws(() => watchdog.start(0), code(Reason.BAD_ARGUMENT));
      assert.throws(() => watchdog.start(1e9), code(Reason.BAD_ARGUMENT));
    });
  });
}

export function counterConformance(o: { name: string; make: () => MonotonicCounter }): Suite {
  return suite(`MonotonicCounter conformance: ${o.name}`, (it) => {
    it("advances, and refuses to decrease with COUNTER_DECREASE", () => {
      const c = o.make();
      const start = c.read();
      c.advance(start + 3);
      assert.equal(c.read(), start + 3);
      c.advance(start + 3);
      assert.equal(c.read(), start + 3, "equal is a no-op");
      assert.throws(() => c.advance(start + 2), code(Reason.COUNTER_DECREASE));
      assert.equal(c.read(), start + 3, "unchanged after refusal");
    });
    it("refuses values that are not 32-bit unsigned integers", () => {
      const c = o.make();
      assert.throws(() => c.advance(1.5), code(Reason.BAD_ARGUMENT));
      assert.throws(() => c.advance(2 ** 32), code(Reason.BAD_ARGUMENT));
    });
  });
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function digestConformance(o: { name: string; make: () => Digest }): Suite {
  return suite(`Digest conformance: ${o.name}`, (it) => {
    it("SHA-256 of the FIPS 180-2 vectors", () => {
      const d = o.make();
      const h1 = d.sha256();
      assert.equal(hex(h1.finish()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
      const h2 = d.sha256();
      h2.update(Uint8Array.of(0x61, 0x62, 0x63));
      assert.equal(hex(h2.finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    });
    it("gives the same digest when the input is split at every point", () => {
      const d = o.make();
      const data = new Uint8Array(200);
      for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
      const whole = d.sha256();
      whole.update(data);
      const want = hex(whole.finish());
      for (let cut = 0; cut <= data.length; cut++) {
        const h = d.sha256();
        h.update(data.subarray(0, cut));
        h.update(data.subarray(cut));
        assert.equal(hex(h.finish()), want, `split at ${cut}`);
      }
    });
    it("throws when used after finish", () => {
      const h = o.make().sha256();
      h.finish();
      assert.throws(() => h.update(new Uint8Array(1)));
      assert.throws(() => h.finish());
    });
  });
}

export function serialConformance(o: {
  name: string;
  make: () => { serial: Serial; hostSend: (b: Uint8Array) => void; hostDrain: () => Uint8Array; advance: (ms: number) => void };
}): Suite {
  return suite(`Serial conformance: ${o.name}`, (it) => {
    it("carries bytes both ways, in order, without re-entrant callbacks", () => {
      const { serial, hostSend, hostDrain, advance } = o.make();
      const got: number[] = [];
      let inside = false;
      serial.onReceive((d) => {
        assert.equal(inside, false, "callback ran inside a call");
        for (const b of d) got.push(b);
      });
      inside = true;
      hostSend(Uint8Array.of(1, 2, 3));
      hostSend(Uint8Array.of(4));
      inside = false;
      advance(10);
      assert.equal(got.join(","), "1,2,3,4");
      serial.write(Uint8Array.of(9, 8));
      serial.write(Uint8Array.of(7));
      advance(10);
      assert.bytes(hostDrain(), Uint8Array.of(9, 8, 7));
    });
  });
}

export function networkConformance(o: {
  name: string;
  make: () => {
    net: Network;
    /** An echo server's address. */
    echo: { host: string; port: number };
    /** An address where nothing listens. */
    closedPort: { host: string; port: number };
    /** Let time pass (virtual) or wait (real). */
    settle: (ms: number) => Promise<void>;
    teardown?: () => void;
  };
}): Suite {
  return suite(`Network conformance: ${o.name}`, (it) => {
    it("connects, echoes bytes in order, and closes", async () => {
      const env = o.make();
      try {
        const events: string[] = [];
        const got: number[] = [];
        const handlers: SocketHandlers = {
          onConnect: () => events.push("connect"),
          onData: (d) => got.push(...d),
          onClose: () => events.push("close"),
        };
        const s = env.net.connect({ host: env.echo.host, port: env.echo.port, tls: false }, handlers);
        await env.settle(50);
        assert.equal(events[0], "connect");
        s.write(Uint8Array.of(1, 2, 3));
        s.write(Uint8Array.of(4, 5));
        await env.settle(50);
        assert.equal(got.join(","), "1,2,3,4,5");
        s.close();
        await env.settle(50);
        assert.throws(() => s.write(Uint8Array.of(1)), code(Reason.SOCKET_CLOSED));
        assert.ok(!events.includes("close"), "no onClose for a close the core asked for");
      } finally {
        env.teardown?.();
      }
    });
    it("reports a refused connection through onClose, not a throw", async () => {
      const env = o.make();
      try {
        let reason = -1;
        env.net.connect({ host: env.closedPort.host, port: env.closedPort.port, tls: false }, { onClose: (r) => (reason = r) });
        await env.settle(200);
        assert.equal(reason, Reason.SOCKET_REFUSED);
      } finally {
        env.teardown?.();
      }
    });
  });
}

export function powerConformance(o: { name: string; make: () => Power }): Suite {
  return suite(`Power conformance: ${o.name}`, (it) => {
    it("reports a plausible supply in millivolts", () => {
      const mv = o.make().supplyMillivolts();
      assert.ok(Number.isInteger(mv) && mv >= 0 && mv < 60000, `got ${mv}`);
    });
  });
}
