/**
 * hal/node/socket.ts keeps one TLS SecureContext per CA (making one parses the
 * CA: at 1,000 simulated devices a context per connect cost up to 14 % of the
 * CPU). Several connections with the same CA share it; another CA gets its own.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as tls from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NodeNetwork } from "../../hal/node/socket";
import { ensureTlsFiles } from "../../tools/serve/certs";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-tlsctx-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("NodeNetwork TLS contexts", () => {
  it("connections with one CA share one SecureContext; a second CA gets a second", async () => {
    const files = ensureTlsFiles(join(dir, "a"));
    const other = ensureTlsFiles(join(dir, "b"));
    const server = tls.createServer({ cert: readFileSync(files.cert), key: readFileSync(files.key) }, (s) => s.end());
    const port = await new Promise<number>((r) => server.listen(0, "127.0.0.1", () => r((server.address() as { port: number }).port)));
    try {
      const net = new NodeNetwork({ ca: readFileSync(files.ca, "utf8") });
      const connectOnce = (ca?: string) =>
        new Promise<string>((resolve) => {
          net.connect({ host: "127.0.0.1", port, tls: true, ...(ca ? { ca } : {}) }, { onConnect: () => resolve("connected"), onClose: (r) => resolve(`closed ${r}`) });
        });
      for (let i = 0; i < 5; i++) expect(await connectOnce()).toBe("connected");
      const contexts = (net as unknown as { contexts: Map<string, tls.SecureContext> }).contexts;
      expect(contexts.size).toBe(1);
      // another CA: its own context (and the handshake fails: the server's chain is not under it)
      expect(await connectOnce(readFileSync(other.ca, "utf8"))).toMatch(/^closed/);
      expect(contexts.size).toBe(2);
      net.destroyAll();
    } finally {
      server.close();
    }
  });
});
