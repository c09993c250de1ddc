/**
 * The Lua scripts of the Global (Redis) rate limiter: a line-for-line port of fixed-window.ts,
 * sliding-window.ts and token-bucket.ts, so that a Redis-backed limit makes exactly the decisions
 * the in-process algorithms make for the same sequence of operations and times. Any change to
 * those files must be mirrored here (the equivalence test in
 * test/unit/dataplane/ratelimit/redis/equivalence.test.ts fails otherwise).
 *
 * Arithmetic. Redis runs Lua 5.1, whose numbers are doubles like JavaScript's: every expression
 * below is evaluated in the same order as its JS counterpart, with math.floor / math.ceil exactly
 * where the JS uses Math.floor / Math.ceil, so results are bit-identical (integers stay exact below
 * 2^53, as the JS files require). Two Lua pitfalls are avoided on purpose:
 * - Lua 5.1 turns numbers into strings with "%.14g" (tostring, `..`, and redis.call arguments),
 *   which rounds beyond 14 digits; the state is therefore written with string.format('%.17g')
 *   (round-trips any double) and the TTL with string.format('%d').
 * - A Lua number in a reply is truncated to an integer by Redis; all reply values are integers
 *   already, and Infinity (retry never possible) is sent as -1.
 *
 * State. One Redis string per (limit, key): "<start> <used> <prev>" (see types.ts LimitState for
 * their meaning per algorithm), written with SET ... PX so that it vanishes once the quota would
 * be full again (plus a margin): memory stays bounded by the active keys. A state that is full
 * (equivalent to a zeroed one) is deleted instead of written, since a missing key means full quota.
 * A state is rewritten whenever rolling it forward changed it, even on a refusal, because with
 * per-call amounts (consumer overrides) rolling is not path-independent and the JS algorithms
 * keep the rolled state too.
 *
 * Time. ARGV[1] is the caller's `now` in ms; when empty, the script reads the Redis server clock
 * (TIME), so that every proxy shares one clock. Redis ≥ 5 replicates scripts by effects, so
 * reading TIME before writing is allowed (Redis 7 has no other mode). The TTL is counted on the
 * server's clock whatever the state's clock: with a caller clock (which may be skewed, or a test's
 * fake clock) the margin is a minute rather than a second.
 *
 * Cluster: every key of one call must hash to the same slot (redis-keys.ts puts a hash tag in
 * them); the scripts touch only the keys they are given.
 */

/** Algorithm codes passed to the scripts. */
export const ALGORITHM_CODES = { FixedWindow: 1, SlidingWindow: 2, TokenBucket: 3 } as const;

/** Values per limit after ARGV[1] in TAKE_SCRIPT: algorithm, amount, periodMs, burst, cost. */
export const TAKE_ARGS_PER_LIMIT = 5;

/** Most limits (keys) in one TAKE_SCRIPT call. */
export const MAX_LIMITS_PER_CALL = 16;

/** The reply value standing for Infinity (retry never possible). */
export const INFINITY_REPLY = -1;

/** Shared by both scripts: state load/save, the three algorithms, time-to-full. */
const COMMON = `
local INF = -1
-- TTL margins (ms) beyond the time the quota is full again: server clock / caller clock.
local MARGIN_SERVER = 1000
local MARGIN_CALLER = 60000
-- Longest TTL: a debt larger than ~a year's quota is forgiven after a year idle.
local MAX_TTL = 31622400000

local function clock(arg)
  local now = tonumber(arg)
  if now then return now, MARGIN_CALLER end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), MARGIN_SERVER
end

-- Returns {start, used, prev} and whether the key existed; a missing or unreadable value is the
-- zeroed state (full quota).
local function load(key)
  local v = redis.call('GET', key)
  if v then
    local a, b, c = string.match(v, '^(%S+) (%S+) (%S+)$')
    a, b, c = tonumber(a), tonumber(b), tonumber(c)
    if a and b and c then return {a, b, c}, true end
  end
  return {0, 0, 0}, false
end

-- isFull of each algorithm, on a rolled state.
local function is_full(alg, s)
  if alg == 2 then return s[2] <= 0 and s[3] <= 0 end
  return s[2] <= 0
end

-- sliding-window.ts fullAt.
local function sw_full_at(s, cur, amount, period, now)
  if cur > 0 then return s[1] + (math.ceil(cur / amount) + 1) * period end
  if s[3] > 0 then return s[1] + period end
  return now
end

-- Until the (rolled) state is full again if nothing more is taken: the resetMs of its decision.
local function reset_of(alg, s, now, amount, period)
  local used = s[2]
  if alg == 1 then
    if used > 0 then return math.ceil(s[1] + math.max(1, math.ceil(used / amount)) * period - now) end
    return 0
  elseif alg == 2 then
    return math.max(0, math.ceil(sw_full_at(s, used, amount, period, now) - now))
  end
  if used > 0 then return math.ceil(s[1] + used / amount - now) end
  return 0
end

-- Deletes a full state, else writes it with a TTL until full again plus the margin.
local function store(key, existed, alg, s, now, amount, period, margin)
  if is_full(alg, s) then
    if existed then redis.call('DEL', key) end
    return
  end
  local ttl = reset_of(alg, s, now, amount, period) + margin
  -- amount 0 (nothing drains) or a huge debt: keep it for the longest TTL.
  if ttl ~= ttl or ttl > MAX_TTL then ttl = MAX_TTL end
  if ttl < 1000 then ttl = 1000 end
  redis.call('SET', key, string.format('%.17g %.17g %.17g', s[1], s[2], s[3]), 'PX', string.format('%d', ttl))
end

-- fixed-window.ts roll.
local function fw_roll(s, now, period, amount)
  local start = math.floor(now / period) * period
  if start > s[1] then
    s[2] = math.max(0, s[2] - ((start - s[1]) / period) * amount)
    s[1] = start
  end
end

-- sliding-window.ts roll.
local function sw_roll(s, now, period, amount)
  local start = math.floor(now / period) * period
  if start > s[1] then
    local windows = (start - s[1]) / period
    local cur = s[2]
    local forPrev = cur - (windows - 1) * amount
    if forPrev > 0 then s[3] = math.min(forPrev, amount) else s[3] = 0 end
    s[2] = math.max(0, cur - windows * amount)
    s[1] = start
  end
end

-- token-bucket.ts refill.
local function tb_refill(s, now, amount)
  if now > s[1] then
    s[2] = math.max(0, s[2] - (now - s[1]) * amount)
    s[1] = now
  end
end

local function roll(alg, s, now, period, amount)
  if alg == 1 then fw_roll(s, now, period, amount)
  elseif alg == 2 then sw_roll(s, now, period, amount)
  else tb_refill(s, now, amount) end
end

-- Each decide rolls s in place and returns: allowed, used after a take, remaining, resetMs,
-- retryAfterMs (INF for Infinity). The caller consumes by setting s[2] to the second value.

-- fixed-window.ts decide.
local function fw_decide(s, cost, now, amount, period)
  fw_roll(s, now, period, amount)
  local used = s[2]
  local allowed = cost <= amount and used + cost <= amount
  local after = used
  if allowed then after = used + cost end
  local remaining = math.max(0, math.floor(amount - after))
  local reset = 0
  if after > 0 then reset = math.ceil(s[1] + math.max(1, math.ceil(after / amount)) * period - now) end
  local retry = 0
  if not allowed then
    if cost > amount then
      retry = INF
    else
      local windows = math.max(1, math.ceil((used + cost - amount) / amount))
      retry = math.max(1, math.ceil(s[1] + windows * period - now))
    end
  end
  return allowed, after, remaining, reset, retry
end

-- sliding-window.ts firstFit.
local function sw_first_fit(prev, cur, cost, amount, period)
  if prev <= 0 then return 0 end
  local room = (amount - cur - cost) * period
  return math.max(0, period - math.floor(room / prev))
end

-- sliding-window.ts retryAt.
local function sw_retry_at(s, cost, amount, period)
  local cur = s[2]
  local j = 0
  if not (cur + cost <= amount) then j = math.ceil((cur + cost - amount) / amount) end
  if j == 0 then return s[1] + sw_first_fit(s[3], cur, cost, amount, period) end
  local curJ = math.max(0, cur - j * amount)
  local prevJ = math.min(math.max(0, cur - (j - 1) * amount), amount)
  return s[1] + j * period + sw_first_fit(prevJ, curJ, cost, amount, period)
end

-- sliding-window.ts decide.
local function sw_decide(s, cost, now, amount, period)
  sw_roll(s, now, period, amount)
  local prev, used = s[3], s[2]
  local prevWeight = period - math.max(0, now - s[1])
  local capacity = amount * period
  local load = prev * prevWeight + used * period
  local allowed = cost <= amount and load + cost * period <= capacity
  local after = used
  if allowed then after = used + cost end
  local afterLoad = prev * prevWeight + after * period
  local remaining = math.max(0, math.floor((capacity - afterLoad) / period))
  local reset = math.max(0, math.ceil(sw_full_at(s, after, amount, period, now) - now))
  local retry = 0
  if not allowed then
    if cost > amount then
      retry = INF
    else
      retry = math.max(1, math.ceil(sw_retry_at(s, cost, amount, period) - now))
    end
  end
  return allowed, after, remaining, reset, retry
end

-- token-bucket.ts decide.
local function tb_decide(s, cost, now, amount, period, burst)
  tb_refill(s, now, amount)
  local used = s[2]
  local capacity = amount + burst
  local scaledCapacity = capacity * period
  local scaledCost = cost * period
  local allowed = cost <= capacity and used + scaledCost <= scaledCapacity
  local after = used
  if allowed then after = used + scaledCost end
  local remaining = math.max(0, math.floor((scaledCapacity - after) / period))
  local reset = 0
  if after > 0 then reset = math.ceil(s[1] + after / amount - now) end
  local retry = 0
  if not allowed then
    if cost > capacity then
      retry = INF
    else
      local wait = math.ceil((used + scaledCost - scaledCapacity) / amount)
      retry = math.max(1, math.ceil(s[1] + wait - now))
    end
  end
  return allowed, after, remaining, reset, retry
end
`;

/**
 * One request check against every limit of a policy, all or nothing.
 *
 * KEYS[i]: the state of limit i (1 ≤ #KEYS ≤ 16, distinct, one slot).
 * ARGV[1]: now in ms, or '' for the server clock.
 * ARGV[2 + 5(i−1) …]: algorithm code, effective amount, periodMs, burst, cost of limit i.
 *
 * Every limit is decided first (a peek); only if all admit is the cost consumed from all of them,
 * so a refusal takes nothing anywhere and needs no refund. Reply: {allAllowed 0/1, then per limit
 * allowed 0/1, remaining, resetMs, retryAfterMs (−1 = Infinity)}; when refused, each limit's
 * figures are what its algorithm's peek returns.
 */
export const TAKE_SCRIPT = `${COMMON}
local n = #KEYS
if n < 1 or n > ${MAX_LIMITS_PER_CALL} or #ARGV ~= 1 + ${TAKE_ARGS_PER_LIMIT} * n then
  return redis.error_reply('ERR modelgate ratelimit take: bad arguments')
end
local now, margin = clock(ARGV[1])
local specs, states, loaded, existed, afters = {}, {}, {}, {}, {}
local reply = {1}
local all = true
for i = 1, n do
  local b = 2 + ${TAKE_ARGS_PER_LIMIT} * (i - 1)
  local alg, amount, period = tonumber(ARGV[b]), tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local burst, cost = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  if not (alg and amount and period and burst and cost) or period <= 0 then
    return redis.error_reply('ERR modelgate ratelimit take: bad arguments for limit ' .. i)
  end
  specs[i] = {alg, amount, period}
  local allowed, after, remaining, reset, retry = false, nil, 0, 0, INF
  -- Amount 0 refuses everything, and (as in the JS) leaves the state untouched.
  if amount > 0 then
    local s, e = load(KEYS[i])
    loaded[i] = {s[1], s[2], s[3]}
    states[i], existed[i] = s, e
    if alg == 1 then
      allowed, after, remaining, reset, retry = fw_decide(s, cost, now, amount, period)
    elseif alg == 2 then
      allowed, after, remaining, reset, retry = sw_decide(s, cost, now, amount, period)
    else
      allowed, after, remaining, reset, retry = tb_decide(s, cost, now, amount, period, burst)
    end
    afters[i] = after
  end
  if not allowed then all = false end
  reply[#reply + 1] = allowed and 1 or 0
  reply[#reply + 1] = remaining
  reply[#reply + 1] = reset
  reply[#reply + 1] = retry
end
if not all then reply[1] = 0 end
for i = 1, n do
  local s = states[i]
  if s then
    if all then s[2] = afters[i] end
    local l = loaded[i]
    if s[1] ~= l[1] or s[2] ~= l[2] or s[3] ~= l[3] or not existed[i] then
      local spec = specs[i]
      store(KEYS[i], existed[i], spec[1], s, now, spec[2], spec[3], margin)
    end
  end
end
return reply
`;

/**
 * Reconciles a reservation on one limit (the JS algorithm's adjust): delta > 0 charges more,
 * possibly into debt; delta < 0 refunds, never beyond a full quota.
 *
 * KEYS[1]: the state. ARGV: now ('' for the server clock), algorithm code, effective amount,
 * periodMs, burst, delta (finite). Reply: 1 when a state is kept, 0 when the key is (now) absent.
 */
export const ADJUST_SCRIPT = `${COMMON}
if #KEYS ~= 1 or #ARGV ~= 6 then
  return redis.error_reply('ERR modelgate ratelimit adjust: bad arguments')
end
local alg, amount, period = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local delta = tonumber(ARGV[6])
if not (alg and amount and period and delta) or period <= 0 then
  return redis.error_reply('ERR modelgate ratelimit adjust: bad arguments')
end
local key = KEYS[1]
local s, existed = load(key)
-- A refund to a full quota changes nothing; only a charge needs a state.
if not existed and not (delta > 0) then return 0 end
local now, margin = clock(ARGV[1])
roll(alg, s, now, period, amount)
if alg == 1 then
  s[2] = math.max(0, s[2] + delta)
elseif alg == 2 then
  if delta >= 0 then
    s[2] = s[2] + delta
  else
    -- A refund comes off the current window first, then off the previous window's count.
    local fromCur = math.min(s[2], -delta)
    s[2] = s[2] - fromCur
    s[3] = math.max(0, s[3] - (-delta - fromCur))
  end
else
  s[2] = math.max(0, s[2] + delta * period)
end
store(key, existed, alg, s, now, amount, period, margin)
if is_full(alg, s) then return 0 end
return 1
`;
