/** `xs-ota ca`: the fleet CA that issues device certificates for mutual TLS. */
import { fingerprint, initCa, signCsr, toPem } from "../ca/ca";
import { CliError, intOption, io, parse, readInput, usageError, writeOutput, type Command } from "./command";

const usage = `usage: xs-ota ca init --dir DIR [--name NAME] [--days N]
       xs-ota ca sign --dir DIR CSR [-o CERT.pem] [--days N] [--force]

The fleet CA: devices make their own key and print a CSR (AT+CSR); the CA signs it;
the device installs the certificate (AT+CERT); brokers require it (serve --client-ca,
mosquitto require_certificate) and bind the MQTT client id to its commonName.
  init            make DIR/ca.pem and DIR/ca-key.pem (PKCS#8, mode 0600: keep it offline);
                  prints the CA certificate's SHA-256
    --name NAME   the CA's commonName (default "xs-ota fleet CA")
    --days N      validity, days (default 3650)
  sign CSR        check a device's CSR (PEM or DER: P-256, ECDSA-SHA256, CN = a device id,
                  its own signature verifies) and issue its certificate (PEM)
    -o FILE       write the certificate there (default: stdout)
    --days N      validity, days (default 825)
    --force       overwrite FILE`;

export const command: Command = {
  summary: "the fleet CA: init, and sign device CSRs (mutual TLS)",
  usage,
  json: true,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      dir: { type: "string" },
      name: { type: "string" },
      days: { type: "string" },
      output: { type: "string", short: "o" },
      force: { type: "boolean" },
    });
    const [verb, ...rest] = positionals;
    if (!values.dir) throw usageError("--dir DIR is required");
    if (verb === "init") {
      if (rest.length) throw usageError(`unexpected argument "${rest[0]}"`);
      const days = intOption(values.days, "days", 3650);
      if (days < 1 || days > 36500) throw usageError("--days must be 1..36500");
      let der: Uint8Array;
      try {
        der = initCa(values.dir, values.name ?? "xs-ota fleet CA", days);
      } catch (e) {
        throw new CliError((e as Error).message);
      }
      const fp = fingerprint(der);
      io.say(`wrote ${values.dir}/ca.pem and ${values.dir}/ca-key.pem (keep the key offline)\nCA SHA-256 ${fp}`);
      io.result({ ca: `${values.dir}/ca.pem`, sha256: fp });
      return 0;
    }
    if (verb === "sign") {
      if (rest.length !== 1) throw usageError("sign takes one CSR file");
      const days = intOption(values.days, "days", 825);
      if (days < 1 || days > 36500) throw usageError("--days must be 1..36500");
      const csr = readInput(rest[0], "CSR");
      let issued;
      try {
        issued = signCsr(values.dir, csr, days);
      } catch (e) {
        throw new CliError(`${rest[0]}: ${(e as Error).message}`);
      }
      const pem = toPem("CERTIFICATE", issued.der);
      if (values.output) {
        writeOutput(values.output, pem, values.force, "-o");
        io.say(`wrote ${values.output}: CN=${issued.deviceId}, serial ${issued.serial}, until ${issued.notAfter.toISOString()}`);
      } else if (io.json) io.say(pem);
      else process.stdout.write(pem);
      io.result({ deviceId: issued.deviceId, serial: issued.serial, notAfter: issued.notAfter.toISOString(), ...(values.output ? { output: values.output } : { pem }) });
      return 0;
    }
    throw usageError(verb ? `unknown ca command "${verb}" (init or sign)` : "ca init or ca sign");
  },
};
