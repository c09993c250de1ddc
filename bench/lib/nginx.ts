/**
 * nginx instances for the proxy benchmarks, each with its own config in a temp dir: the upstream
 * (`return 200` with a small body) and the reference reverse proxy. `master_process off` and
 * `daemon off`: one process does all the work (what `worker_processes 1` gives, minus the idle
 * master), so its pid is the one whose CPU time is measured. Client and upstream keep-alive
 * connections are never recycled during a run (`keepalive_requests 1000000`; nginx's default of
 * 1000 would make it reconnect, which node:http and undici do not do).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pinned, spawnTracked, type Tracked, waitForPort } from './procs.ts';

/** The upstream's response body (the small GET response every case serves; gateway-child.ts has a copy). */
export const UPSTREAM_BODY = 'hello from the upstream\n';

export function nginxVersion(bin: string): string | undefined {
  // nginx prints its version on stderr.
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  return /nginx\/(\S+)/.exec(`${r.stderr}${r.stdout}`)?.[1];
}

function atLeast(version: string, min: number[]): boolean {
  const v = version.split('.').map(Number);
  for (let i = 0; i < min.length; i++) {
    if ((v[i] ?? 0) !== min[i]) return (v[i] ?? 0) > min[i]!;
  }
  return true;
}

function common(dir: string, name: string): string {
  const p = (f: string) => path.join(dir, `${name}-${f}`);
  return `daemon off;
master_process off;
worker_processes 1;
pid ${p('nginx.pid')};
error_log ${p('error.log')} warn;
events { worker_connections 4096; }
`;
}

function httpCommon(dir: string, name: string): string {
  const p = (f: string) => path.join(dir, `${name}-${f}`);
  return `  access_log off;
  client_body_temp_path ${p('body')};
  proxy_temp_path ${p('proxy')};
  fastcgi_temp_path ${p('fastcgi')};
  uwsgi_temp_path ${p('uwsgi')};
  scgi_temp_path ${p('scgi')};
  keepalive_requests 1000000;
  keepalive_timeout 75s;
`;
}

export function upstreamConfig(dir: string, port: number): string {
  return `${common(dir, 'upstream')}http {
${httpCommon(dir, 'upstream')}  server {
    listen 127.0.0.1:${port};
    location / {
      default_type text/plain;
      return 200 ${JSON.stringify(UPSTREAM_BODY)};
    }
  }
}
`;
}

export function reverseProxyConfig(dir: string, port: number, upstreamPort: number): string {
  return `${common(dir, 'proxy')}http {
${httpCommon(dir, 'proxy')}  upstream up {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

/** Writes `config` to dir/name.conf, starts nginx on `cpu` and waits for `port`. */
export async function startNginx(
  bin: string,
  dir: string,
  name: string,
  config: string,
  port: number,
  cpu: number | undefined,
): Promise<Tracked> {
  const conf = path.join(dir, `${name}.conf`);
  writeFileSync(conf, config);
  const version = nginxVersion(bin) ?? '0';
  // -e (1.19.5+) keeps nginx from opening the packaged error log before it reads the config.
  const early = atLeast(version, [1, 19, 5]) ? ['-e', path.join(dir, `${name}-early-error.log`)] : [];
  const [cmd, args] = pinned(cpu, bin, [...early, '-p', `${dir}/`, '-c', conf]);
  const proc = spawnTracked(cmd, args);
  await waitForPort(port, 10_000, proc);
  return proc;
}
