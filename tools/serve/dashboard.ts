/**
 * The operator dashboard and its JSON API, served by `xs-ota serve` on its
 * HTTPS port beside the Range downloads, behind the operator credential
 * (DIR/operator.token): a device's credentials (its client id, its
 * certificate) open nothing here, and no page or API answer carries data
 * without the token.
 *
 *   GET  /dashboard?token=T            checks T, sets an HttpOnly, Secure, SameSite=Strict cookie, 303 to /dashboard
 *   GET  /dashboard                    the page (cookie); it draws everything from /api/v1/fleet and live events
 *   GET  /api/v1/fleet                 the fleet as JSON (FleetView, tools/serve/plans.ts)
 *   GET  /api/v1/events                the same, as Server-Sent Events, one `fleet` event a second
 *   POST /api/v1/rollouts              {"plan": TEXT, "signature"?: HEX} → start a rollout
 *   POST /api/v1/rollouts/ID/ACTION    ACTION pause | resume | abort, body {"note"?: TEXT}
 *
 * The API takes the token as `Authorization: Bearer T` or the cookie.
 */
import type * as http from "node:http";
import { timingSafeEqual } from "node:crypto";
import { OtaError } from "../../src/errors";
import type { RolloutPlans } from "./plans";

const COOKIE = "xsota_operator";
const MAX_BODY = 64 * 1024;

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieToken(req: http.IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === COOKIE) return decodeURIComponent(v.join("="));
  }
  return undefined;
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const parts: Buffer[] = [];
    req.on("data", (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY) {
        reject(new Error(`request body over ${MAX_BODY} bytes`));
        req.destroy();
      } else parts.push(d);
    });
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}

export interface Dashboard {
  /** Handle the request when it is the dashboard's (true), else leave it (false). */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean;
  close(): void;
}

export function dashboard(plans: RolloutPlans, token: string, log: (line: string) => void): Dashboard {
  const streams = new Set<http.ServerResponse>();
  const timer = setInterval(() => {
    if (streams.size === 0) return;
    const data = `event: fleet\ndata: ${JSON.stringify(plans.fleet())}\n\n`;
    for (const s of streams) s.write(data);
  }, 1000);
  timer.unref();

  const authorized = (req: http.IncomingMessage): boolean => {
    const auth = req.headers.authorization;
    const bearer = auth?.startsWith("Bearer ") ? auth.slice(7).trim() : undefined;
    const t = bearer ?? cookieToken(req);
    return t !== undefined && sameSecret(t, token);
  };

  const api = async (req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> => {
    if (req.method === "GET" && path === "/api/v1/fleet") return json(res, 200, plans.fleet());
    if (req.method === "GET" && path === "/api/v1/events") {
      res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store", Connection: "keep-alive" });
      res.write(`event: fleet\ndata: ${JSON.stringify(plans.fleet())}\n\n`);
      streams.add(res);
      req.on("close", () => streams.delete(res));
      return;
    }
    if (req.method !== "POST") return json(res, 405, { error: "method not allowed" });
    let body: { plan?: unknown; signature?: unknown; note?: unknown };
    try {
      body = JSON.parse((await readBody(req)) || "{}");
    } catch (e) {
      return json(res, 400, { error: `the body is not JSON: ${(e as Error).message}` });
    }
    try {
      if (path === "/api/v1/rollouts") {
        if (typeof body.plan !== "string") return json(res, 400, { error: 'body needs "plan": the plan file\'s text' });
        if (body.signature !== undefined && typeof body.signature !== "string") return json(res, 400, { error: '"signature" must be hex text' });
        return json(res, 200, plans.start(body.plan, body.signature as string | undefined));
      }
      const m = /^\/api\/v1\/rollouts\/([0-9a-f]{6,64})\/(pause|resume|abort)$/.exec(path);
      if (!m) return json(res, 404, { error: "no such API" });
      return json(res, 200, plans.control(m[1], m[2] as "pause" | "resume" | "abort", typeof body.note === "string" ? body.note.slice(0, 200) : ""));
    } catch (e) {
      const code = e instanceof OtaError ? e.code : undefined;
      return json(res, e instanceof OtaError ? 422 : 409, { error: (e as Error).message, ...(code !== undefined ? { reason: code } : {}) });
    }
  };

  return {
    handle(req, res) {
      const url = new URL(req.url ?? "/", "https://x");
      const path = url.pathname;
      if (path !== "/" && path !== "/dashboard" && !path.startsWith("/api/")) return false;
      if (path === "/dashboard" && url.searchParams.has("token")) {
        if (!sameSecret(url.searchParams.get("token")!, token)) {
          log(`dashboard: refused a wrong operator token from ${req.socket.remoteAddress}`);
          res.writeHead(401, { "Content-Type": "text/plain" }).end("wrong operator token\n");
          return true;
        }
        res.writeHead(303, { Location: "/dashboard", "Set-Cookie": `${COOKIE}=${encodeURIComponent(token)}; HttpOnly; Secure; SameSite=Strict; Path=/`, "Cache-Control": "no-store" }).end();
        return true;
      }
      if (!authorized(req)) {
        res.writeHead(401, { "Content-Type": "text/plain", "WWW-Authenticate": 'Bearer realm="xs-ota operator"' }).end("the operator credential is needed: /dashboard?token=<DIR/operator.token>, or Authorization: Bearer <token>\n");
        return true;
      }
      if (path === "/" || path === "/dashboard") {
        res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'" });
        res.end(PAGE.replace("__INITIAL__", JSON.stringify(plans.fleet()).replace(/</g, "\\u003c")));
        return true;
      }
      void api(req, res, path).catch((e: Error) => {
        if (!res.headersSent) json(res, 400, { error: e.message });
      });
      return true;
    },
    close() {
      clearInterval(timer);
      for (const s of streams) s.end();
      streams.clear();
    },
  };
}

/**
 * The page: no data of its own; a script draws every table and chart from the
 * fleet JSON (embedded at load, then each live event).
 */
const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>xs-ota fleet</title>
<style>
body{font:14px system-ui,sans-serif;margin:16px;color:#1b1f24;background:#f6f7f9}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:18px 0 6px}
.card{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:10px 14px;margin-bottom:12px}
table{border-collapse:collapse;width:100%} td,th{padding:3px 8px;border-bottom:1px solid #eceff2;text-align:left;white-space:nowrap}
th{font-weight:600;color:#4a5360} .num{text-align:right;font-variant-numeric:tabular-nums}
.status{font-weight:700;padding:2px 8px;border-radius:4px;color:#fff}
.s-running{background:#2f7d32}.s-paused{background:#b26a00}.s-halted{background:#c62828}.s-aborted{background:#555}.s-complete{background:#1565c0}
.grid{display:grid;grid-template-columns:repeat(3,1fr);gap:12px} .muted{color:#69727d}
svg text{font:11px system-ui,sans-serif}
</style></head><body>
<h1>xs-ota fleet <span class="muted" id="time"></span> <span class="muted" id="live">(connecting)</span></h1>
<div id="rollouts"></div>
<div class="grid">
 <div class="card"><h2>Devices by state</h2><div id="states"></div></div>
 <div class="card"><h2>Versions in the field</h2><div id="versions"></div></div>
 <div class="card"><h2>Failures by reason code</h2><div id="failures"></div></div>
</div>
<div class="card"><h2>Devices</h2><table id="devices"></table></div>
<script id="initial" type="application/json">__INITIAL__</script>
<script>
"use strict";
const COLORS={committed:"#2e7d32","up-to-date":"#66bb6a",updating:"#1e88e5",offered:"#90caf9",pending:"#cfd8dc","rolled-back":"#e53935",failed:"#b71c1c","bricked-suspect":"#6a1b9a",refused:"#ff8f00",aborted:"#757575",silent:"#eeeeee"};
const STAGES=Object.keys(COLORS);
function el(tag,attrs,...kids){const e=document.createElement(tag);for(const[k,v]of Object.entries(attrs||{}))e.setAttribute(k,v);for(const k of kids)e.append(k instanceof Node?k:document.createTextNode(String(k)));return e}
function svg(tag,attrs,...kids){const e=document.createElementNS("http://www.w3.org/2000/svg",tag);for(const[k,v]of Object.entries(attrs||{}))e.setAttribute(k,v);for(const k of kids)e.append(k instanceof Node?k:document.createTextNode(String(k)));return e}
function stacked(stages,total,testid){const W=420,H=18;const s=svg("svg",{width:W,height:H,"data-testid":testid,role:"img"});let x=0;const t=Math.max(total,1);
 for(const k of STAGES){const n=stages[k]||0;if(!n)continue;const w=W*n/t;s.append(svg("rect",{x,y:0,width:w,height:H,fill:COLORS[k],"data-stage":k,"data-count":n},svg("title",{},k+": "+n)));x+=w}
 if(!total)s.append(svg("rect",{x:0,y:0,width:W,height:H,fill:"#f1f3f5"}));return s}
function bars(obj,testid,color){const entries=Object.entries(obj).sort((a,b)=>b[1]-a[1]);const max=Math.max(1,...entries.map(e=>e[1]));const H=20*entries.length+4;
 const s=svg("svg",{width:320,height:Math.max(H,24),"data-testid":testid});entries.forEach(([k,n],i)=>{const w=180*n/max;
 s.append(svg("text",{x:0,y:20*i+15},k),svg("rect",{x:110,y:20*i+3,width:w,height:14,fill:color,"data-key":k,"data-count":n}),svg("text",{x:114+w,y:20*i+15},n))});
 if(!entries.length)s.append(svg("text",{x:0,y:16},"none"));return s}
function ago(ms){if(!ms)return"";const s=Math.round((Date.now()-ms)/1000);return s<60?s+" s ago":Math.round(s/60)+" min ago"}
function render(f){
 document.getElementById("time").textContent=f.time;
 const r=document.getElementById("rollouts");r.replaceChildren();
 if(!f.rollouts.length)r.append(el("div",{class:"card","data-testid":"no-rollout"},"No rollout. Start one with xs-ota rollout start --plan PLAN.json"));
 for(const ro of f.rollouts){const c=el("div",{class:"card","data-testid":"rollout","data-rollout":ro.id,"data-status":ro.status});
  c.append(el("h2",{},"Rollout "+ro.label+" ",el("span",{class:"status s-"+ro.status,"data-testid":"rollout-status"},ro.status),
   el("span",{class:"muted"}," "+ro.id.slice(0,12)+(ro.signed?" · signed plan":" · plan hashed")+" · in flight "+ro.inFlight+(ro.maxInFlight?" / "+ro.maxInFlight:""))));
  if(ro.why)c.append(el("div",{"data-testid":"rollout-why"},(ro.reasonName?ro.reasonName+" ("+ro.reason+"): ":"")+ro.why));
  const t=el("table",{"data-testid":"waves"});t.append(el("tr",{},...["wave","reach","soak","budget","opened","devices","progress","committed","in flight","pending","failures"].map(h=>el("th",{},h))));
  ro.waves.forEach((w,i)=>{const s=w.stages;t.append(el("tr",{"data-testid":"wave","data-wave":w.name,"data-open":w.opened?"1":"0"},
   el("td",{},w.name+(i===ro.currentWave?" ◀":"")),el("td",{class:"num"},"≤ "+w.upToPercent+" %"),el("td",{class:"num"},w.soakSec+" s"),el("td",{class:"num"},w.failureBudget),
   el("td",{},w.opened?ago(w.opened):"not open"),el("td",{class:"num","data-testid":"wave-devices"},w.devices),el("td",{},stacked(s,w.devices,"wave-bar-"+w.name)),
   el("td",{class:"num","data-testid":"wave-committed"},(s.committed||0)+(s["up-to-date"]||0)),el("td",{class:"num"},(s.offered||0)+(s.updating||0)),
   el("td",{class:"num"},s.pending||0),el("td",{class:"num","data-testid":"wave-failures"},w.failures)))});
  c.append(t);const legend=el("div",{class:"muted"});for(const k of STAGES)legend.append(el("span",{style:"margin-right:10px"},el("span",{style:"display:inline-block;width:10px;height:10px;background:"+COLORS[k]})," "+k));c.append(legend);r.append(c)}
 document.getElementById("states").replaceChildren(bars(f.states,"states-chart","#1e88e5"));
 document.getElementById("versions").replaceChildren(bars(f.versions,"versions-chart","#2e7d32"));
 const fl={};for(const[code,v]of Object.entries(f.failures))fl[code+" "+v.name]=v.count;
 document.getElementById("failures").replaceChildren(bars(fl,"failures-chart","#c62828"));
 const d=document.getElementById("devices");d.replaceChildren(el("tr",{},...["device","hardware","version","state","last reason","wave","rollout stage","seen"].map(h=>el("th",{},h))));
 for(const x of f.devices)d.append(el("tr",{"data-testid":"device","data-device":x.id,"data-stage":x.rollout?x.rollout.stage:""},el("td",{},x.id),el("td",{},x.hardwareId),el("td",{},x.version),el("td",{},x.state),
  el("td",{},x.reason?x.reason+" "+x.reasonName:""),el("td",{},x.rollout?x.rollout.wave:""),el("td",{},x.rollout?x.rollout.stage:""),el("td",{class:"num"},x.seenAgoSec+" s")));
}
render(JSON.parse(document.getElementById("initial").textContent));
window.addEventListener("load",()=>{const es=new EventSource("/api/v1/events");
 es.addEventListener("fleet",(e)=>{document.getElementById("live").textContent="(live)";render(JSON.parse(e.data))});
 es.onerror=()=>{document.getElementById("live").textContent="(reconnecting)"}});
</script></body></html>
`;
