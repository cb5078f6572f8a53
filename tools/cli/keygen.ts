/** `xs-ota keygen`: a new P-256 signing key (PEM PKCS#8) and optionally its public key (PEM SPKI). */
import { toHex } from "../../src/util/bytes";
import { generateKeyPem, parsePrivateKeyPem } from "../keys/pem";
import { checkWritable, io, parse, usageError, writeOutput, type Command } from "./command";

const usage = `usage: xs-ota keygen -o KEY.pem [--public PUB.pem] [--force]
       xs-ota keygen -k KEY.pem -t ecdsa-p256      (imgtool's spelling)

Generate an ECDSA P-256 signing key.
  -o, --output FILE   private key, PEM PKCS#8 (mode 0600); readable by openssl and imgtool
  -k, --key FILE      the same as --output (as imgtool keygen names it)
  -t, --type TYPE     ecdsa-p256, the only type (imgtool's name for it)
  --public FILE       also write the public key, PEM SubjectPublicKeyInfo
  --force             overwrite existing files (without it an existing file is refused, exit 1)
Prints the key id (SHA-256 of the public key's DER SubjectPublicKeyInfo, MCUboot's KEYHASH).
\`xs-ota getpub\` prints the public key in the forms devices and MCUboot take.`;

export const command: Command = {
  summary: "generate a P-256 signing key (PEM PKCS#8) and its public key",
  usage,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      output: { type: "string", short: "o" },
      key: { type: "string", short: "k" },
      type: { type: "string", short: "t" },
      public: { type: "string" },
      force: { type: "boolean" },
    });
    if (positionals.length) throw usageError(`unexpected argument "${positionals[0]}"`);
    if (values.output && values.key && values.output !== values.key) throw usageError("give the key file once: -o KEY.pem or -k KEY.pem");
    const out = values.output ?? values.key;
    if (!out) throw usageError("-o KEY.pem is required");
    if (values.type !== undefined && values.type !== "ecdsa-p256") throw usageError(`-t/--type must be ecdsa-p256 (the only key type xs-ota signs with), got "${values.type}"`);
    if (values.public === out) throw usageError("--public must name another file than the private key");
    checkWritable(out, values.force, "key");
    if (values.public) checkWritable(values.public, values.force, "--public");
    const { privatePem, publicPem } = generateKeyPem();
    writeOutput(out, privatePem, true, "key", 0o600);
    if (values.public) writeOutput(values.public, publicPem, true, "--public");
    const key = parsePrivateKeyPem(privatePem);
    io.say(`wrote ${out}${values.public ? ` and ${values.public}` : ""}\nkey id ${toHex(key.keyId)}`);
    return 0;
  },
};
