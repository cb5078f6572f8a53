/**
 * Device entry (USR-G771): builds the Platform from hal/moddable and the
 * build's mc/config, then runs the firmware: the AT console on the serial
 * port and the update agent (src/firmware.ts). The agent arms the hardware
 * watchdog under its software supervisor, confirms a trial image after its
 * self-test (an acknowledged heartbeat), and otherwise lets MCUboot revert.
 * Until trusted keys are provisioned (AT+KEYADD) only the console runs.
 */
import { startDevice } from "../../hal/moddable/firmware";

startDevice("usr-g771");
