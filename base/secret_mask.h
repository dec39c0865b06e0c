// The one secret masker. Config dumps, logs and PostgreSQL errors show a secret as kMasked and
// never by value; every place that prints a connection string or a credential goes through here.
#pragma once

#include <string>
#include <string_view>

namespace ferry {

inline constexpr std::string_view kMasked = "***";

// A PostgreSQL connection string with its password masked, in either form libpq takes:
// "postgresql://u:secret@h/db" -> "postgresql://u:***@h/db", and "password=..." (any case,
// spaces around '=', quoted or not) in key=value form or in a URI query.
std::string mask_conninfo(std::string_view conninfo);

// `message` with every occurrence of `conninfo` replaced by its masked form: libpq quotes the
// connection string back in some errors, and those errors reach logs and ferryctl's output.
std::string scrub_conninfo(std::string message, std::string_view conninfo);

}  // namespace ferry
