/** The portable MQTT client suite (also run inside XS by test/xs/mqtt.test.ts). */
import { mqttClientSuite } from "../xs/entries/mqtt";
import { registerSuite } from "../lib/vitest-suite";

registerSuite(mqttClientSuite());
