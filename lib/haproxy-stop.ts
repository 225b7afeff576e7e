// How HAProxy's unit stops it (the Debian setup script's drop-in, the NixOS module's unit): SIGUSR1
// to the master is a soft stop. The listeners close at once, so NGINX sends new requests straight
// to the live slot (its backup upstream), while the requests already inside HAProxy are answered
// before it exits (within the unit's stop timeout, after which systemd kills what is left). Systemd's default, SIGTERM, is a
// hard stop that cuts them off, and NGINX never sends a POST twice: every write in flight during a
// `systemctl restart haproxy` (a package upgrade) would fail.
export const HAPROXY_STOP_SIGNAL = "SIGUSR1";
