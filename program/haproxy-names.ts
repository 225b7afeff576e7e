// Names and numbers HAProxy's configuration (templates/haproxy.cfg.njk) and agent.json share: the
// templates render them, agent.json carries them to the agent.

export const HAPROXY_BACKEND = "app";
export const HAPROXY_FRONTEND = "public";
/** Header that forces a request to one slot (pre-traffic smoke tests); NGINX strips it. */
export const SLOT_HEADER = "X-Slot";
/** Weight both servers carry in haproxy.cfg; runtime weights are set relative to it (0..100 = percent). */
export const CONFIG_WEIGHT = 100;
/** The loopback UDP port where HAProxy logs each request for the deploy agent (not a stack setting). */
export const TRAFFIC_LOG_PORT = 8514;
