/** `xs-ota keyset`: make and inspect root-signed key sets (which keys sign manifests, revocation records and time). */
import { fromHex, toHex } from "../../src/util/bytes";
import { createKeyring } from "../../src/crypto/keyring";
import { softwareDigest } from "../../src/crypto/sha256";
import { reasonName } from "../../src/errors";
import { decodeKeySet, decodeKeySetEnvelope, MAX_KEYSET_KEYS, MAX_RETIRED, parseSignedKeySet, type KeySet } from "../../src/update/keyset";
import { KeyError, readPublicKey, readSigningKey } from "../keys/pem";
import { spkiOf } from "../../src/crypto/der";
import { sha256 } from "@noble/hashes/sha2.js";
import { describeKeySetEnvelope, isKeySetEnvelope, KeySetError, makeKeySet, parseRoles, roleNames, type KeySetKey } from "../release/keyset";
import { parseExpiry } from "./release";
import { checkWritable, CliError, intOption, io, parse, readInput, usageError, writeOutput, type Command } from "./command";

const usage = `usage: xs-ota keyset make --root ROOT.pem --sequence N --key SPEC [--key SPEC ...] -o OUT.keyset [options]
       xs-ota keyset inspect FILE.keyset [--root ROOT_PUB.pem]

A key set is the root's certificate of the keys that sign for the fleet:
which public keys may sign release manifests, revocation records and time
statements (the heartbeat ack's signed time), for which hardware id, and
signing when. Devices trust only root keys (fixed in their firmware) for key
sets; a key set replaces the one a device holds when its (epoch, sequence)
is newer by at most 65536, or when it opens the next epoch (the root's reset
of every sequence, key sets' and revocation records'). Keys it names as
retired are refused (KEY_RETIRED); any key it does not name is refused too.
Put OUT in xs-ota serve's release directory to publish it.

make:
  --root FILE           the root's private key, PEM (keep it offline)
  --sequence N          1..4294967295, greater than the previous key set's (by at most 65536)
  --epoch N             default 0; the previous key set's + 1 resets every sequence (then --sequence <= 65536)
  --key SPEC            a signing key: PUB.pem,roles=manifest+revocation+time[,hw=ID][,from=T][,until=T]
                        (roles: any of manifest, revocation, time; hw: the one hardware id it may
                        sign for, default any; from/until: its validity window for the signed
                        time (issued-at, statement time), unix seconds or ISO; until may be +Nd;
                        defaults: from = --issued-at, until = +730d); repeatable, 1..${MAX_KEYSET_KEYS}
  --retire PUB_OR_ID    a retired key: its public key PEM or its key id (64 hex); repeatable, at most ${MAX_RETIRED}
  --previous FILE       the key set this one replaces: the step and the epoch are checked as a device would
  --issued-at T         unix seconds (default now); a signed time: it moves devices' time floor
  --note TEXT           why (non-critical; devices skip it)
  -o, --output FILE     the signed key set (name it *.keyset for xs-ota serve)
  --force               overwrite OUT if it exists

inspect: every field, decoded with the device's decoder; with --root the
root signature is checked too (exit 1 when it does not verify).

examples:
  xs-ota keyset make --root root.pem --sequence 1 --key batch1.pub.pem,roles=manifest+revocation,hw=usr-n520 \\
    --key time.pub.pem,roles=time -o rel/fleet-1.keyset
  xs-ota keyset make --root root.pem --sequence 2 --previous rel/fleet-1.keyset --key batch2.pub.pem,roles=manifest+revocation,hw=usr-n520 \\
    --key time.pub.pem,roles=time --retire batch1.pub.pem --note "batch 1 key leaked" -o rel/fleet-2.keyset
  xs-ota keyset inspect rel/fleet-2.keyset --root root.pub.pem`;

/** A public key from a PEM file (public or private). */
function publicKeyOf(path: string, what: string): Uint8Array {
  readInput(path, what);
  try {
    return readPublicKey(path);
  } catch (e) {
    if (!(e instanceof KeyError)) throw e;
    try {
      return readSigningKey(path).publicKey;
    } catch {
      throw new CliError(`${what} ${e.message}`);
    }
  }
}

function time(value: string, base: number, what: string): number {
  try {
    return parseExpiry(value, base);
  } catch {
    throw usageError(`${what} "${value}" is not +Nd/+Nh/+Nm/+Ns, unix seconds or an ISO date`);
  }
}

/** `PUB.pem,roles=a+b,hw=ID,from=T,until=T` → a key set entry. */
export function parseKeySpec(spec: string, issuedAt: number): KeySetKey {
  const [path, ...opts] = spec.split(",");
  let roles = 0;
  let hardwareId: string | undefined;
  let notBefore = issuedAt;
  let until = "+730d";
  for (const o of opts) {
    const m = /^(roles|hw|from|until)=(.+)$/.exec(o);
    if (!m) throw usageError(`--key ${spec}: "${o}" is not roles=…, hw=…, from=… or until=…`);
    if (m[1] === "roles") roles = parseRoles(m[2].replace(/\+/g, ","));
    else if (m[1] === "hw") hardwareId = m[2];
    else if (m[1] === "from") notBefore = time(m[2], issuedAt, "--key from=");
    else until = m[2];
  }
  if (roles === 0) throw usageError(`--key ${spec}: roles=… is required (manifest, revocation, time, joined by +)`);
  const publicKey = publicKeyOf(path, "--key");
  const notAfter = time(until, notBefore, "--key until=");
  return { publicKey, roles, scope: hardwareId === undefined ? { notBefore, notAfter } : { hardwareId, notBefore, notAfter } };
}

function readKeySetFile(path: string, what: string): { bytes: Uint8Array; keySet: KeySet } {
  const bytes = readInput(path, what);
  if (!isKeySetEnvelope(bytes)) throw new CliError(`${what} ${path}: not a signed key set`);
  try {
    return { bytes, keySet: decodeKeySet(decodeKeySetEnvelope(bytes).manifest, softwareDigest) };
  } catch (e) {
    throw new CliError(`${what} ${path}: ${(e as Error).message}`);
  }
}

async function make(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    root: { type: "string" },
    sequence: { type: "string" },
    epoch: { type: "string" },
    key: { type: "string", multiple: true },
    retire: { type: "string", multiple: true },
    previous: { type: "string" },
    "issued-at": { type: "string" },
    note: { type: "string" },
    force: { type: "boolean" },
    output: { type: "string", short: "o" },
  });
  if (positionals.length) throw usageError(`unexpected argument "${positionals[0]}"`);
  for (const req of ["root", "sequence", "output"] as const) if (!values[req]) throw usageError(`--${req} is required`);
  if (!values.key?.length) throw usageError("at least one --key is required");
  const sequence = intOption(values.sequence, "sequence");
  if (sequence < 1 || sequence > 0xffffffff) throw usageError("--sequence must be 1..4294967295");
  const epoch = intOption(values.epoch, "epoch", 0);
  if (epoch > 0xffffffff) throw usageError("--epoch must be 0..4294967295");
  const issuedAt = values["issued-at"] === undefined ? Math.floor(Date.now() / 1000) : intOption(values["issued-at"], "issued-at");
  if (issuedAt > 0xffffffff) throw usageError("--issued-at must fit 32 bits");
  let root;
  readInput(values.root!, "--root");
  try {
    root = readSigningKey(values.root!);
  } catch (e) {
    if (e instanceof KeyError) throw new CliError(`--root ${e.message}`);
    throw e;
  }
  const keys = values.key.map((k) => parseKeySpec(k, issuedAt));
  const retired = (values.retire ?? []).map((r) => (/^[0-9a-fA-F]{64}$/.test(r) ? fromHex(r.toLowerCase())! : sha256(spkiOf(publicKeyOf(r, "--retire")))));
  const previous = values.previous === undefined ? undefined : readKeySetFile(values.previous, "--previous").keySet;
  checkWritable(values.output!, values.force);
  try {
    const r = makeKeySet({ sequence, epoch, issuedAt, keys, retired }, root, { note: values.note, previous });
    writeOutput(values.output!, r.envelope, true);
    io.say(`wrote ${values.output}: key set ${epoch}.${sequence}, ${r.keySet.keys.length} key(s), ${r.keySet.retired.length} retired, signed by root ${toHex(root.keyId)}`);
    for (const k of r.keySet.keys) io.say(`  ${toHex(k.keyId)}  ${roleNames(k.roles)}  hardware ${k.scope.hardwareId ?? "any"}`);
  } catch (e) {
    if (e instanceof KeySetError) throw new CliError(e.message);
    throw e;
  }
  return 0;
}

async function inspect(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { root: { type: "string", multiple: true } });
  if (positionals.length !== 1) throw usageError("expected one FILE");
  const bytes = readInput(positionals[0], "FILE");
  if (!isKeySetEnvelope(bytes)) throw new CliError(`${positionals[0]}: not a signed key set`);
  const text = describeKeySetEnvelope(bytes);
  io.say(text);
  if (/REFUSED/.test(text)) return 1;
  if (values.root?.length) {
    const roots = createKeyring(values.root.map((p) => publicKeyOf(p, "--root")), softwareDigest);
    const r = parseSignedKeySet(bytes, roots, softwareDigest);
    if (!r.ok) {
      io.warn(`xs-ota keyset inspect: ${positionals[0]}: ${reasonName(r.reason)}: ${r.message}`);
      return 1;
    }
    io.say("  root signature: verified");
  }
  return 0;
}

export const command: Command = {
  summary: "make or inspect a root-signed key set (which keys sign manifests, revocations and time)",
  usage,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === "make") return make(rest);
    if (sub === "inspect") return inspect(rest);
    throw usageError(sub === undefined ? "expected make or inspect" : `unknown subcommand "${sub}" (make, inspect)`);
  },
};

/** For `xs-ota release --keyset`: the key set in a file. @throws CliError when it is not one. */
export function readKeySet(path: string): { bytes: Uint8Array; keySet: KeySet } {
  return readKeySetFile(path, "--keyset");
}
