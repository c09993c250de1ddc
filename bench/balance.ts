/**
 * bench/balance: tail latency under each balancing algorithm, by deterministic discrete-event
 * simulation on a fake clock with the real balancer modules. Prints JSON; `--quick` is the CI
 * smoke. No thresholds here.
 *
 * The fleet: 8 model-server replicas, each serving 4 requests at a time with a FIFO queue behind
 * the slots; service times lognormal (mean 100 ms, σ 0.5), one replica 3× slower. Poisson
 * arrivals at 80% of the fleet's total capacity. The "proxy" increments inFlight on dispatch,
 * decrements it on completion and reports the latency it saw (queueing included) with
 * observeLatency, as the real proxy does. Every algorithm replays the same arrivals and the same
 * per-request work, so the differences are the balancer's alone. "Random" is a uniform pick, which
 * is what a plain Kubernetes Service (kube-proxy) does.
 *
 * Note that the slow replica has 4.5% of the capacity, so any load-blind algorithm (RoundRobin,
 * Random) sends it 12.5% of the requests at 80% load: it is over capacity, its queue grows for
 * the whole run, and those algorithms' tails grow with the run length.
 *
 *   npm run bench:balance               200,000 requests
 *   npm run bench:balance -- --quick     20,000 requests
 */
import { parseArgs } from 'node:util';
import { createBalancer, observeLatency, seededRandom } from '../src/dataplane/balancers/index.ts';
import type { Balancer, BalancerOptions, EndpointState } from '../src/dataplane/balancers/types.ts';
import { newEndpointState } from '../src/dataplane/balancers/types.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    requests: { type: 'string' },
    seed: { type: 'string' },
    load: { type: 'string' },
  },
});
const REQUESTS = Number(values.requests ?? (values.quick ? 20_000 : 200_000));
const SEED = Number(values.seed ?? 1);
const LOAD = Number(values.load ?? 0.8);
const REPLICAS = 8;
const SLOTS = 4;
const MEAN_SERVICE_MS = 100;
const SIGMA = 0.5;
const SLOW_FACTOR = 3;
/** Replica i's service times are multiplied by FACTORS[i]; the last one is the slow one. */
const FACTORS = Array.from({ length: REPLICAS }, (_, i) => (i === REPLICAS - 1 ? SLOW_FACTOR : 1));
const CAPACITY_PER_MS = FACTORS.reduce((sum, f) => sum + SLOTS / (MEAN_SERVICE_MS * f), 0);
const RATE_PER_MS = LOAD * CAPACITY_PER_MS;

// The workload, drawn once: arrival times and each request's base service time.
const arrivals = new Float64Array(REQUESTS);
const work = new Float64Array(REQUESTS);
{
  const rnd = seededRandom(SEED);
  const mu = Math.log(MEAN_SERVICE_MS) - (SIGMA * SIGMA) / 2; // so that the mean is MEAN_SERVICE_MS
  let t = 0;
  for (let i = 0; i < REQUESTS; i++) {
    t += -Math.log(1 - rnd()) / RATE_PER_MS;
    arrivals[i] = t;
    // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
    const z = Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
    work[i] = Math.exp(mu + SIGMA * z);
  }
}

type Make = (eps: EndpointState[], opts: BalancerOptions) => Balancer;

/** Uniform random choice: kube-proxy's behaviour, for comparison only. */
const randomBalancer: Make = (eps, opts) => ({ pick: () => eps[Math.floor(opts.random() * eps.length)] });

const ALGORITHMS: [string, Make][] = [
  ['RoundRobin', (eps, opts) => createBalancer('RoundRobin', eps, opts)],
  ['Random', randomBalancer],
  ['LeastRequest', (eps, opts) => createBalancer('LeastRequest', eps, opts)],
  ['PeakEWMA', (eps, opts) => createBalancer('PeakEWMA', eps, opts)],
];

/** Min-heap of completion events (time, request), in typed arrays: at most REPLICAS × SLOTS. */
class EventHeap {
  readonly times = new Float64Array(REPLICAS * SLOTS);
  readonly reqs = new Int32Array(REPLICAS * SLOTS);
  size = 0;
  push(time: number, req: number): void {
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.times[parent]! <= time) break;
      this.times[i] = this.times[parent]!;
      this.reqs[i] = this.reqs[parent]!;
      i = parent;
    }
    this.times[i] = time;
    this.reqs[i] = req;
  }
  /** Removes the earliest event; returns its request (its time is read from times[0] before). */
  pop(): number {
    const top = this.reqs[0]!;
    const n = --this.size;
    const time = this.times[n]!;
    const req = this.reqs[n]!;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.times[child + 1]! < this.times[child]!) child++;
      if (this.times[child]! >= time) break;
      this.times[i] = this.times[child]!;
      this.reqs[i] = this.reqs[child]!;
      i = child;
    }
    this.times[i] = time;
    this.reqs[i] = req;
    return top;
  }
}

function simulate(make: Make) {
  let now = 0;
  const eps = FACTORS.map((_, i) => newEndpointState(`http://10.0.0.${i + 1}:8000`));
  const indexOf = new Map(eps.map((ep, i) => [ep, i]));
  // The same balancer seed for every algorithm: they differ in how they use it, not in luck.
  const balancer = make(eps, { random: seededRandom(SEED + 1000), now: () => now });
  const busy = new Int32Array(REPLICAS);
  // Per-replica FIFO queues; a replica can at most queue every request.
  const queues = FACTORS.map(() => new Int32Array(REQUESTS));
  const heads = new Int32Array(REPLICAS);
  const tails = new Int32Array(REPLICAS);
  const maxQueue = new Int32Array(REPLICAS);
  const served = new Int32Array(REPLICAS);
  const replicaOf = new Int32Array(REQUESTS);
  const latency = new Float64Array(REQUESTS);
  const heap = new EventHeap();

  const start = (req: number, r: number): void => {
    busy[r]!++;
    heap.push(now + work[req]! * FACTORS[r]!, req);
  };

  let next = 0;
  while (next < REQUESTS || heap.size > 0) {
    // Completions at the same instant as an arrival go first: the slot is free for it.
    if (heap.size > 0 && (next >= REQUESTS || heap.times[0]! <= arrivals[next]!)) {
      now = heap.times[0]!;
      const req = heap.pop();
      const r = replicaOf[req]!;
      const ep = eps[r]!;
      ep.inFlight--;
      latency[req] = now - arrivals[req]!;
      observeLatency(ep, latency[req]!, now);
      busy[r]!--;
      if (heads[r]! < tails[r]!) start(queues[r]![heads[r]!++]!, r);
    } else {
      const req = next++;
      now = arrivals[req]!;
      const ep = balancer.pick({});
      if (!ep) throw new Error('no endpoint picked');
      const r = indexOf.get(ep)!;
      ep.inFlight++;
      replicaOf[req] = r;
      served[r]!++;
      if (busy[r]! < SLOTS) start(req, r);
      else {
        queues[r]![tails[r]!++] = req;
        maxQueue[r] = Math.max(maxQueue[r]!, tails[r]! - heads[r]!);
      }
    }
  }

  let sum = 0;
  for (let i = 0; i < REQUESTS; i++) sum += latency[i]!;
  const sorted = latency.slice().sort();
  const q = (p: number): number => +sorted[Math.min(REQUESTS - 1, Math.floor(p * REQUESTS))]!.toFixed(1);
  const slow = REPLICAS - 1;
  return {
    p50Ms: q(0.5),
    p90Ms: q(0.9),
    p99Ms: q(0.99),
    p999Ms: q(0.999),
    meanMs: +(sum / REQUESTS).toFixed(1),
    maxMs: +sorted[REQUESTS - 1]!.toFixed(1),
    slowReplicaShare: +(served[slow]! / REQUESTS).toFixed(4),
    slowReplicaMaxQueue: maxQueue[slow]!,
    fastReplicaMaxQueue: Math.max(...maxQueue.subarray(0, slow)),
  };
}

const t0 = performance.now();
const results: Record<string, ReturnType<typeof simulate>> = {};
for (const [name, make] of ALGORITHMS) results[name] = simulate(make);
const rr = results.RoundRobin!;
const p99VsRoundRobin = Object.fromEntries(
  Object.entries(results).map(([name, r]) => [name, Number((r.p99Ms / rr.p99Ms).toPrecision(3))]),
);

process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'balance',
      requests: REQUESTS,
      seed: SEED,
      replicas: REPLICAS,
      slotsPerReplica: SLOTS,
      serviceMs: { distribution: 'lognormal', mean: MEAN_SERVICE_MS, sigma: SIGMA },
      slowReplicaFactor: SLOW_FACTOR,
      slowReplicaCapacityShare: +(SLOTS / (MEAN_SERVICE_MS * SLOW_FACTOR) / CAPACITY_PER_MS).toFixed(4),
      load: LOAD,
      // True when an even split (RoundRobin, Random) sends the slow replica more than it can serve.
      slowReplicaOverloadedByEvenSplit: (RATE_PER_MS / REPLICAS) * MEAN_SERVICE_MS * SLOW_FACTOR > SLOTS,
      arrivalsPerSecond: +(RATE_PER_MS * 1000).toFixed(1),
      simulatedSeconds: +(arrivals[REQUESTS - 1]! / 1000).toFixed(1),
      results,
      p99VsRoundRobin,
      wallMs: Math.round(performance.now() - t0),
    },
    null,
    2,
  )}\n`,
);
