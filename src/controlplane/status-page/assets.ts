/**
 * The controller's read-only status page: a static HTML shell, a stylesheet and a script, served
 * on the admin listener next to the JSON API they read (/api/v1/status). The script is the source
 * of `statusPageMain`, which is TypeScript checked with the rest of the code; Node strips its
 * types when run from source and tsc when built, so its text is plain JavaScript either way.
 *
 * All references are relative, so the page works at any path prefix (kubectl proxy's pod proxy).
 * The Content-Security-Policy allows only this page's own script, style and API: the page shows
 * cluster data (route names, refusal reasons), and a policy without inline script makes an
 * injection through that data inert even if the script had a bug.
 */
import { statusPageMain } from './client.ts';

export const PAGE_PATH = '/';
export const SCRIPT_PATH = '/ui/app.js';
export const STYLE_PATH = '/ui/style.css';

export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ModelGate controller</title>
<link rel="stylesheet" href="ui/style.css">
<script src="ui/app.js" defer></script>
</head>
<body>
<header><h1>ModelGate controller</h1><span id="updated">loading…</span></header>
<p id="banner" class="banner" role="alert" hidden></p>
<main id="app"><noscript>This page needs JavaScript; the same data is at api/v1/status.</noscript></main>
<footer>Read-only. JSON: <a href="api/v1/status">api/v1/status</a> · metrics: <a href="metrics">metrics</a></footer>
</body>
</html>
`;

export const SCRIPT_JS = `(${statusPageMain.toString()})();\n`;

export const STYLE_CSS = `
:root { color-scheme: light dark; --good: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #6e7781; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 16px 32px; }
header { display: flex; align-items: baseline; gap: 16px; border-bottom: 1px solid #8884; }
h1 { font-size: 20px; margin: 16px 0 8px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
#updated, footer, .empty, .role { color: var(--muted); }
footer { margin-top: 32px; font-size: 12px; }
.banner { background: #cf222e22; border: 1px solid var(--bad); padding: 8px 12px; border-radius: 6px; }
dl#summary { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 16px 0; }
dt { font-weight: 600; }
dd { margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid #8883; }
th { font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: 0.03em; }
.badge { display: inline-block; padding: 0 6px; border-radius: 10px; font-size: 12px; font-weight: 600; border: 1px solid; }
.badge.good { color: var(--good); } .badge.bad { color: var(--bad); }
.badge.warn { color: var(--warn); } .badge.muted { color: var(--muted); }
.reason { color: var(--bad); font-size: 12px; }
.note { color: var(--muted); font-size: 12px; }
ul.endpoints, ol.history { margin: 0; padding-left: 16px; }
ol.history { font-size: 12px; color: var(--muted); }
svg.chart { width: 240px; height: 48px; display: block; border-left: 1px solid #8886; border-bottom: 1px solid #8886; }
svg.chart path { fill: none; stroke: var(--warn); stroke-width: 2; }
`;
