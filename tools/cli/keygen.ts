/** `xs-ota keygen`: a new P-256 signing key (PEM PKCS#8) and optionally its public key (PEM SPKI). */
import { existsSync, writeFileSync } from "node:fs";
import { toHex } from "../../src/util/bytes";
import { generateKeyPem, parsePrivateKeyPem } from "../keys/pem";
import { CliError, parse, usageError, type Command } from "./command";

const usage = `usage: xs-ota keygen -o KEY.pem [--public PUB.pem] [--force]

Generate an ECDSA P-256 signing key.
  -o, --output FILE   private key, PEM PKCS#8 (mode 0600); readable by openssl and imgtool
  --public FILE       also write the public key, PEM SubjectPublicKeyInfo
  --force             overwrite existing files
Prints the key id (SHA-256 of the public key's DER SubjectPublicKeyInfo, MCUboot's KEYHASH).`;

export const command: Command = {
  summary: "generate a P-256 signing key (PEM PKCS#8) and its public key",
  usage,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      output: { type: "string", short: "o" },
      public: { type: "string" },
      force: { type: "boolean" },
    });
    if (positionals.length) throw usageError(`unexpected argument "${positionals[0]}"`);
    if (!values.output) throw usageError("-o KEY.pem is required");
    for (const f of [values.output, values.public]) {
      if (f && existsSync(f) && !values.force) throw new CliError(`${f} exists; use --force to overwrite`);
    }
    const { privatePem, publicPem } = generateKeyPem();
    writeFileSync(values.output, privatePem, { mode: 0o600 });
    if (values.public) writeFileSync(values.public, publicPem);
    const key = parsePrivateKeyPem(privatePem);
    process.stdout.write(`wrote ${values.output}${values.public ? ` and ${values.public}` : ""}\nkey id ${toHex(key.keyId)}\n`);
    return 0;
  },
};
