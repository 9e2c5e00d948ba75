#include "tools/prompt.h"

#include <string>
#include "absl/strings/string_view.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "tools/status_table.h"

namespace raftkv::tools {
namespace {

constexpr absl::string_view kUsage =
    "SET <key> <value>   set key to value: the rest of the line, inner spaces kept\n"
    "GET <key>           print the value of key\n"
    "STATUS              show every node of the cluster\n"
    "HELP                this text\n"
    "QUIT                leave (so does end of input)\n";

// Takes the next whitespace-delimited word off the front of `rest`.
absl::string_view NextWord(absl::string_view& rest) {
  rest = absl::StripLeadingAsciiWhitespace(rest);
  size_t end = 0;
  while (end < rest.size() && !absl::ascii_isspace(static_cast<unsigned char>(rest[end]))) ++end;
  absl::string_view word = rest.substr(0, end);
  rest.remove_prefix(end);
  return word;
}

std::string LeaderText(const client::Client& client) {
  const int leader = client.known_leader();
  if (leader < 0) return "no leader known";
  return absl::StrCat("leader node ", leader, " at ",
                      client.addresses()[static_cast<size_t>(leader)]);
}

class Prompt {
 public:
  Prompt(client::Client& client, std::ostream& out, std::ostream& err, bool interactive)
      : client_(client), out_(out), err_(err), interactive_(interactive) {}

  // Returns false to stop.
  bool Handle(absl::string_view line, int line_number) {
    absl::string_view rest = line;
    const std::string command = absl::AsciiStrToUpper(NextWord(rest));
    if (command.empty()) return true;
    if (command == "QUIT" || command == "EXIT") return false;
    if (command == "HELP") {
      out_ << kUsage;
    } else if (command == "STATUS") {
      const std::vector<client::NodeStatus> nodes = client_.ClusterStatus();
      out_ << FormatStatusTable(nodes);
      if (const int down = CountUnreachable(nodes); down > 0) {
        return Error(line_number,
                     absl::StrCat(down, " of ", nodes.size(), " nodes did not answer"));
      }
    } else if (command == "GET") {
      const absl::string_view key = NextWord(rest);
      if (key.empty() || !absl::StripAsciiWhitespace(rest).empty()) {
        return Error(line_number, "usage: GET <key>");
      }
      absl::StatusOr<client::GetResult> result = client_.Get(std::string(key));
      if (!result.ok()) return Error(line_number, result.status().message());
      out_ << (result->found ? result->value : "(not found)") << "\n";
    } else if (command == "SET") {
      const absl::string_view key = NextWord(rest);
      const absl::string_view value =
          absl::StripTrailingAsciiWhitespace(absl::StripLeadingAsciiWhitespace(rest));
      if (key.empty() || value.empty()) return Error(line_number, "usage: SET <key> <value>");
      absl::Status result = client_.Set(std::string(key), std::string(value));
      if (!result.ok()) return Error(line_number, result.message());
      out_ << "OK\n";
    } else {
      return Error(line_number, absl::StrCat("unknown command '", command,
                                             "': use SET <key> <value>, GET <key>, STATUS, HELP "
                                             "or QUIT"));
    }
    NoticeLeaderChange();
    return true;
  }

  void Banner() {
    client_.ClusterStatus();  // learns the leader, if there is one
    out_ << "raftkv: " << client_.addresses().size() << "-node cluster, " << LeaderText(client_)
         << ".\nType SET <key> <value>, GET <key>, STATUS, HELP or QUIT.\n";
    last_leader_ = client_.known_leader();
  }

  void ShowPrompt() {
    if (!interactive_) return;
    const int leader = client_.known_leader();
    out_ << "raftkv [" << (leader < 0 ? std::string("no leader") : absl::StrCat("leader ", leader))
         << "]> " << std::flush;
  }

  bool all_ok() const { return all_ok_; }

 private:
  bool Error(int line_number, absl::string_view message) {
    all_ok_ = false;
    if (interactive_) {
      err_ << "error: " << message << "\n";
    } else {
      err_ << "line " << line_number << ": error: " << message << "\n";
    }
    NoticeLeaderChange();
    return true;
  }

  void NoticeLeaderChange() {
    const int leader = client_.known_leader();
    if (interactive_ && leader >= 0 && leader != last_leader_) {
      if (last_leader_ >= 0) out_ << "(" << LeaderText(client_) << " now)\n";
      last_leader_ = leader;
    }
  }

  client::Client& client_;
  std::ostream& out_;
  std::ostream& err_;
  const bool interactive_;
  int last_leader_ = -1;
  bool all_ok_ = true;
};

}  // namespace

bool RunPrompt(client::Client& client, std::istream& in, std::ostream& out, std::ostream& err,
               bool interactive) {
  Prompt prompt(client, out, err, interactive);
  if (interactive) prompt.Banner();
  std::string line;
  int line_number = 0;
  while (true) {
    prompt.ShowPrompt();
    if (!std::getline(in, line)) break;
    ++line_number;
    if (!prompt.Handle(line, line_number)) break;
    out.flush();
  }
  if (interactive) out << "\n";
  return prompt.all_ok();
}

}  // namespace raftkv::tools
