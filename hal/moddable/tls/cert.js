// Moddable's TLS session imports "ssl/cert"; hal/moddable/tls/manifest.json maps that name
// here and leaves the SDK's ssl_cert.js out. A bare specifier, because XS resolves a
// relative one against this module's name ("ssl/cert"), not against this file.
export { default } from "hal/moddable/cert-manager";
