// Hawk request signatures (HMAC-SHA256 with WebCrypto), as Taskcluster's clients make them: a
// header for API calls, a bewit for links. Temporary credentials add their certificate in `ext`.
const encoder = new TextEncoder();

function base64(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text);
}

function urlSafe(b64) {
  return b64.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

async function hmac(key, text) {
  const k = await crypto.subtle.importKey("raw", encoder.encode(key), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return base64(await crypto.subtle.sign("HMAC", k, encoder.encode(text)));
}

// `ext`: base64 of {certificate} for temporary credentials, empty otherwise.
function ext(credentials) {
  if (!credentials.certificate) return "";
  const certificate = JSON.parse(credentials.certificate);
  return base64(encoder.encode(JSON.stringify({ certificate })));
}

// What the MAC covers of a URL: the path and query exactly as the browser sends them, host, port.
function target(url) {
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return { resource: url.pathname + url.search, host: url.hostname.toLowerCase(), port };
}

function nonce() {
  return urlSafe(base64(crypto.getRandomValues(new Uint8Array(6))));
}

// The Authorization header for `method` on `url` (a URL object).
export async function hawkHeader(credentials, method, url) {
  const { resource, host, port } = target(url);
  const ts = String(Math.floor(Date.now() / 1000));
  const n = nonce();
  const e = ext(credentials);
  const normalized = ["hawk.1.header", ts, n, method.toUpperCase(), resource, host, port, "", e, ""].join("\n");
  const mac = await hmac(credentials.accessToken, normalized);
  const extPart = e ? `, ext="${e}"` : "";
  return `Hawk id="${credentials.clientId}", ts="${ts}", nonce="${n}"${extPart}, mac="${mac}"`;
}

// `url` with a bewit valid for `seconds`: a link that works without headers (GET only).
export async function bewitUrl(credentials, url, seconds = 900) {
  const { resource, host, port } = target(url);
  const exp = String(Math.floor(Date.now() / 1000) + seconds);
  const e = ext(credentials);
  const normalized = ["hawk.1.bewit", exp, "", "GET", resource, host, port, "", e, ""].join("\n");
  const mac = await hmac(credentials.accessToken, normalized);
  const bewit = urlSafe(base64(encoder.encode(`${credentials.clientId}\\${exp}\\${mac}\\${e}`)));
  const signed = new URL(url);
  signed.searchParams.set("bewit", bewit);
  return signed;
}
