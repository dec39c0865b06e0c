// `ferryctl probe URL`: an end-to-end check of a TURN deployment, ferry's or anyone's.
//
//   ferryctl probe 'turn:turn.example.org:3478?transport=udp' --user U --password-stdin
//   ferryctl probe 'turns:turn.example.org:5349' --secret-stdin [--user ID] [--ttl S]
//   ferryctl probe 'stun:stun.example.org'                        (Binding only)
//
// Steps, one line each with its time: resolve; connect (TCP/TLS); for turns: the certificate
// (chain verified against the system roots or --ca, the name, days to expiry); Binding (the
// reflexive address); Allocate twice on two 5-tuples; CreatePermission and ChannelBind each way;
// ChannelData from one allocation's relayed address to the other's and back; the allocations
// released. Exit 0 only when every step passed, 1 when one failed, 2 for a usage error; --json
// prints one JSON object instead. With --secret-stdin the credential is a TURN REST one made from
// the shared secret (username "<expiry>:<user>", password base64(HMAC-SHA1(secret, username))).
#pragma once

#include <CLI/CLI.hpp>

namespace ferry::ferryctl {

// Adds the `probe` subcommand to `app`; it runs from its parse callback and ends the process's
// parse with CLI::RuntimeError carrying the exit status (0 included), so main() needs nothing else.
void add_probe_command(CLI::App& app);

}  // namespace ferry::ferryctl
