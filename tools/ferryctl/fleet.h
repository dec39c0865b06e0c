// ferryctl's fleet commands, on the node registry (db/migrations/0003_nodes.sql):
//
//   ferryctl nodes [--json]                      every node, its status (active|draining|down),
//                                                load and URLs
//   ferryctl drain NODE [--deadline SECONDS]     the node refuses new Allocates (300 to a live
//                                                node, or 508); after SECONDS its allocations close
//   ferryctl undrain NODE                        the node takes allocations again
//   ferryctl sessions [--user U] [--node N] [--json]   live allocations, as of each node's last
//                                                heartbeat: age, bytes in/out, expiry, ...
//   ferryctl kill --user U | --allocation NODE/ID     closes them wherever they are (NOTIFY
//                                                ferry_kill: at once, not at a heartbeat)
//
// A drain is a row update (desired_state); its trigger NOTIFYs the node, which also reads it back
// with every heartbeat. Errors throw std::runtime_error with a one-line message.
#pragma once

#include <libpq-fe.h>

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

namespace ferry::ferryctl {

class FleetCommands {
 public:
  // Adds the subcommands to `app`.
  explicit FleetCommands(CLI::App& app);
  // After parsing: runs the chosen fleet command and returns its exit status, or nullopt when
  // none of them was chosen.
  std::optional<int> run(PGconn* conn) const;

 private:
  CLI::App* nodes_ = nullptr;
  CLI::App* drain_ = nullptr;
  CLI::App* undrain_ = nullptr;
  CLI::App* sessions_ = nullptr;
  CLI::App* kill_ = nullptr;
  std::optional<std::string> user_, filter_node_, allocation_;
  bool json_ = false;
  std::string node_;
  std::optional<uint32_t> deadline_;
};

}  // namespace ferry::ferryctl
