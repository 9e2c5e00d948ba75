// raftkv-bench: a load generator for raftkv and, with the same settings, for etcd (v3 KV API), so
// that one tool in one run measures both.
//
//   raftkv-bench --nodes 127.0.0.1:50051,… --op set --concurrency 256 --duration 10s
//   raftkv-bench --target etcd --endpoints 127.0.0.1:2379 --op get --concurrency 1
//   raftkv-bench … --op mixed:0.9 --dist zipfian --json
//
// Many requests stay in flight over several channels (gRPC callback API): each of the
// --concurrency slots sends its next request as soon as its previous one completes. Only requests
// that complete inside the measured window (after --warmup) count. raftkv requests go, as the
// client library sends them, over one ServeClientStream per channel (--rpc unary: one unary call
// each, as a plain gRPC client would); etcd's are unary calls, the way its clients send them.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "client/request_stream.h"
#include "client/retry_timer.h"
#include "common/address.h"
#include "config/node_config.h"
#include "etcd_kv.grpc.pb.h"
#include "raftkv.grpc.pb.h"
#include "raftkv/client.h"
#include "rpc/grpc_callback_pin.h"

namespace raftkv::bench {
namespace {

using Clock = std::chrono::steady_clock;

enum class Op { kSet, kGet };

struct Settings {
  std::string target = "raftkv";
  std::vector<std::string> addresses;      // where the load goes (raftkv: its leader)
  std::vector<std::string> all_addresses;  // every node given
  std::string op_text = "set";
  double read_fraction = 0;   // mixed:R
  bool serializable = false;  // etcd only: get-serializable
  int concurrency = 1;
  int channels = 0;    // 0: min(concurrency, 8)
  bool unary = false;  // raftkv: unary ServeClient calls instead of ServeClientStream
  Clock::duration duration = std::chrono::seconds(10);
  int64_t requests = 0;  // > 0: measure this many requests instead of a duration
  Clock::duration warmup = std::chrono::seconds(1);
  int key_size = 16;
  int value_size = 100;
  int keyspace = 10'000;
  bool zipfian = false;
  bool prefill = true;
  bool json = false;
  std::string label;
  // If set: every measured request's completion time (Unix µs) and latency (µs), one line each,
  // so a script can compare latency inside and outside given windows (make bench-growth).
  std::string timeline;
};

// Keys "k000…<index>" padded to key_size.
std::string KeyFor(int index, int key_size) {
  std::string digits = std::to_string(index);
  const size_t width = static_cast<size_t>(std::max(key_size, static_cast<int>(digits.size()) + 1));
  return "k" + std::string(width - 1 - digits.size(), '0') + digits;
}

// Zipfian over [0, n) with exponent 0.99 (YCSB's default), by inverse CDF.
class KeyChooser {
 public:
  KeyChooser(int keyspace, bool zipfian) : keyspace_(keyspace) {
    if (!zipfian) return;
    cdf_.resize(static_cast<size_t>(keyspace));
    double total = 0;
    for (int i = 0; i < keyspace; ++i) total += 1.0 / std::pow(i + 1, 0.99);
    double running = 0;
    for (int i = 0; i < keyspace; ++i) {
      running += 1.0 / std::pow(i + 1, 0.99) / total;
      cdf_[static_cast<size_t>(i)] = running;
    }
  }
  int Next(std::mt19937_64& random) const {
    if (cdf_.empty()) return static_cast<int>(random() % static_cast<uint64_t>(keyspace_));
    const double u = std::uniform_real_distribution<double>(0, 1)(random);
    return static_cast<int>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  int keyspace_;
  std::vector<double> cdf_;
};

// One in-flight request slot: issues requests back to back, recording latencies.
struct Slot {
  int index = 0;
  std::mt19937_64 random;
  uint64_t client_id = 0;  // raftkv session (OPEN_SESSION), one per slot; a slot is sequential
  uint64_t sequence = 0;
  std::vector<uint32_t> latencies_us;
  std::vector<Clock::time_point> completed;  // with latencies_us, when --timeline is given
  std::map<std::string, uint64_t> errors;
  Clock::time_point sent;
  Op op = Op::kGet;
  // The request in flight.
  std::unique_ptr<grpc::ClientContext> context;
  ServeClientArgs raftkv_request;
  ServeClientReply raftkv_reply;
  etcdserverpb::PutRequest put_request;
  etcdserverpb::PutResponse put_reply;
  etcdserverpb::RangeRequest range_request;
  etcdserverpb::RangeResponse range_reply;
};

class Runner {
 public:
  explicit Runner(const Settings& settings)
      : settings_(settings), chooser_(settings.keyspace, settings.zipfian) {
    PinGrpcCallbackQueue();
    const int channels =
        settings.channels > 0 ? settings.channels : std::min(settings.concurrency, 8);
    for (int c = 0; c < channels; ++c) {
      const std::string& address =
          settings.addresses[static_cast<size_t>(c) % settings.addresses.size()];
      grpc::ChannelArguments args;
      args.SetInt("grpc.channel_id", c);  // distinct channels, not one shared subchannel
      auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
      raftkv_stubs_.push_back(KV::NewStub(channel));
      if (settings.target == "raftkv" && !settings.unary) {
        raftkv_streams_.push_back(std::make_unique<client::RequestStream>(channel, &timer_));
      }
      etcd_stubs_.push_back(etcdserverpb::KV::NewStub(channel));
    }
    value_ = std::string(static_cast<size_t>(settings.value_size), 'v');
  }

  // Runs the load for warmup + duration; returns the slots with their records.
  std::vector<std::unique_ptr<Slot>>& Run() {
    start_ = Clock::now();
    measure_from_ = start_ + settings_.warmup;
    stop_at_ =
        settings_.requests > 0 ? Clock::time_point::max() : measure_from_ + settings_.duration;
    std::random_device seed;
    for (int i = 0; i < settings_.concurrency; ++i) {
      auto slot = std::make_unique<Slot>();
      slot->index = i;
      slot->random.seed((uint64_t{seed()} << 32) ^ seed());
      slots_.push_back(std::move(slot));
    }
    if (settings_.target == "raftkv" && settings_.op_text != "get" &&
        settings_.op_text != "get-serializable") {
      for (auto& slot : slots_) {
        slot->client_id = OpenSession();
        if (slot->client_id == 0) {
          std::fprintf(stderr, "raftkv-bench: could not open a client session on any node\n");
          std::exit(1);
        }
      }
    }
    active_ = settings_.concurrency;
    for (auto& slot : slots_) Issue(*slot);
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return active_ == 0; });
    return slots_;
  }

  Clock::time_point measure_from() const { return measure_from_; }

  // Opens a raftkv client session (unary OPEN_SESSION), trying each node for up to 10 s; 0 if
  // none succeeded.
  uint64_t OpenSession() {
    ServeClientArgs request;
    request.set_op(ServeClientArgs::OPEN_SESSION);
    const auto give_up = Clock::now() + std::chrono::seconds(10);
    for (size_t attempt = 0; Clock::now() < give_up; ++attempt) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      ServeClientReply reply;
      const grpc::Status status =
          raftkv_stubs_[attempt % raftkv_stubs_.size()]->ServeClient(&context, request, &reply);
      if (status.ok() && reply.success() && reply.client_id() != 0) return reply.client_id();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return 0;
  }
  // The end of the measured window: the deadline, or with --requests the last completion.
  Clock::time_point measured_until() const {
    return settings_.requests > 0 ? last_completion_.load() : stop_at_;
  }

 private:
  void Issue(Slot& slot) {
    const Clock::time_point now = Clock::now();
    const bool enough = settings_.requests > 0 && now >= measure_from_ &&
                        measured_issued_.fetch_add(1) >= settings_.requests;
    if (enough || now >= stop_at_) {
      std::lock_guard<std::mutex> lock(mu_);
      if (--active_ == 0) done_.notify_all();
      return;
    }
    const bool read = settings_.op_text == "get" || settings_.op_text == "get-serializable" ||
                      (settings_.read_fraction > 0 && std::uniform_real_distribution<double>(0, 1)(
                                                          slot.random) < settings_.read_fraction);
    slot.op = read ? Op::kGet : Op::kSet;
    const std::string key = KeyFor(chooser_.Next(slot.random), settings_.key_size);
    if (settings_.target != "raftkv" || settings_.unary) {  // a stream request needs no context
      slot.context = std::make_unique<grpc::ClientContext>();
      slot.context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    }
    const size_t channel = static_cast<size_t>(slot.index) % raftkv_stubs_.size();
    slot.sent = Clock::now();
    if (settings_.target == "raftkv") {
      slot.raftkv_request.Clear();
      slot.raftkv_request.set_op(read ? ServeClientArgs::GET : ServeClientArgs::SET);
      slot.raftkv_request.set_key(key);
      if (!read) {
        slot.raftkv_request.set_value(value_);
        slot.raftkv_request.set_client_id(slot.client_id);
        slot.raftkv_request.set_sequence(++slot.sequence);
      }
      if (!settings_.unary) {
        raftkv_streams_[channel]->Send(
            slot.raftkv_request, std::chrono::seconds(5),
            [this, &slot](const grpc::Status& status, const ServeClientReply& reply) {
              Complete(slot, status,
                       reply.success() ? "" : ServeClientReply::ErrorCode_Name(reply.error_code()));
            });
        return;
      }
      raftkv_stubs_[channel]->async()->ServeClient(
          slot.context.get(), &slot.raftkv_request, &slot.raftkv_reply,
          [this, &slot](grpc::Status status) {
            Complete(slot, status,
                     slot.raftkv_reply.success()
                         ? ""
                         : ServeClientReply::ErrorCode_Name(slot.raftkv_reply.error_code()));
          });
    } else if (read) {
      slot.range_request.Clear();
      slot.range_request.set_key(key);
      slot.range_request.set_serializable(settings_.serializable);
      etcd_stubs_[channel]->async()->Range(
          slot.context.get(), &slot.range_request, &slot.range_reply,
          [this, &slot](grpc::Status s) { Complete(slot, s, ""); });
    } else {
      slot.put_request.Clear();
      slot.put_request.set_key(key);
      slot.put_request.set_value(value_);
      etcd_stubs_[channel]->async()->Put(slot.context.get(), &slot.put_request, &slot.put_reply,
                                         [this, &slot](grpc::Status s) { Complete(slot, s, ""); });
    }
  }

  void Complete(Slot& slot, const grpc::Status& status, const std::string& refusal) {
    const Clock::time_point now = Clock::now();
    if (now >= measure_from_ && now < stop_at_) {
      if (settings_.requests > 0) {
        Clock::time_point last = last_completion_.load();
        while (now > last && !last_completion_.compare_exchange_weak(last, now)) {
        }
      }
      if (!status.ok()) {
        ++slot.errors["grpc " + std::to_string(status.error_code()) + ": " +
                      status.error_message().substr(0, 60)];
      } else if (!refusal.empty()) {
        ++slot.errors[refusal];
      } else {
        slot.latencies_us.push_back(static_cast<uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(now - slot.sent).count()));
        if (!settings_.timeline.empty()) slot.completed.push_back(now);
      }
    }
    // gRPC may run a callback inside the call that started it (an immediate failure): bound the
    // recursion that would make by handing deep chains to a fresh thread.
    thread_local int depth = 0;
    if (depth > 32) {
      std::thread([this, &slot] { Issue(slot); }).detach();
      return;
    }
    ++depth;
    Issue(slot);
    --depth;
  }

  const Settings& settings_;
  KeyChooser chooser_;
  std::string value_;
  std::vector<std::unique_ptr<KV::Stub>> raftkv_stubs_;
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> etcd_stubs_;
  client::RetryTimer timer_;  // expires stream requests; outlives the streams below
  std::vector<std::unique_ptr<client::RequestStream>> raftkv_streams_;
  std::vector<std::unique_ptr<Slot>> slots_;
  Clock::time_point start_, measure_from_, stop_at_;
  std::atomic<int64_t> measured_issued_{0};
  std::atomic<Clock::time_point> last_completion_{};
  std::mutex mu_;
  std::condition_variable done_;
  int active_ = 0;
};

uint32_t Percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[index];
}

// Writes every key once (concurrently), so that GETs find values.
bool Prefill(const Settings& settings) {
  // Sequential keys: run until every key is written once, by count rather than time.
  std::atomic<int> next{0};
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  const int threads = 64;  // synchronous writers: enough to fill group commits
  std::unique_ptr<client::Client> raftkv_client;
  if (settings.target == "raftkv") {
    client::ClientOptions options;
    options.addresses = settings.all_addresses;
    options.deadline = std::chrono::seconds(30);
    absl::StatusOr<std::unique_ptr<client::Client>> created = client::Client::Create(options);
    if (!created.ok()) {
      std::fprintf(stderr, "raftkv-bench: prefill: %s\n",
                   std::string(created.status().message()).c_str());
      return false;
    }
    raftkv_client = std::move(*created);
  }
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      std::unique_ptr<etcdserverpb::KV::Stub> etcd_stub;
      if (settings.target == "etcd") {
        etcd_stub = etcdserverpb::KV::NewStub(grpc::CreateChannel(
            settings.addresses[static_cast<size_t>(t) % settings.addresses.size()],
            grpc::InsecureChannelCredentials()));
      }
      const std::string value(static_cast<size_t>(settings.value_size), 'v');
      for (int i = next++; i < settings.keyspace; i = next++) {
        const std::string key = KeyFor(i, settings.key_size);
        std::string error;  // empty: written
        if (raftkv_client) {
          // Through the client library: it follows the leader if leadership moves under load.
          const absl::Status status = raftkv_client->Set(key, value);
          if (!status.ok()) error = std::string(status.message());
        } else {
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          etcdserverpb::PutRequest request;
          request.set_key(key);
          request.set_value(value);
          etcdserverpb::PutResponse reply;
          const grpc::Status status = etcd_stub->Put(&context, request, &reply);
          if (!status.ok()) error = status.error_message();
        }
        if (error.empty()) continue;
        if (failures++ == 0) {
          std::fprintf(stderr, "raftkv-bench: prefill: first failure: %s\n", error.c_str());
        }
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
  if (failures > 0)
    std::fprintf(stderr, "raftkv-bench: prefill: %d writes failed\n", failures.load());
  return failures == 0;
}

// raftkv serves only on its leader: find it.
std::optional<std::string> FindRaftkvLeader(const std::vector<std::string>& addresses) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    for (const std::string& address : addresses) {
      auto stub = KV::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
      StatusReply reply;
      if (stub->Status(&context, StatusArgs(), &reply).ok() && reply.role() == "leader" &&
          reply.lease_remaining_ms() > 0) {
        return address;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return std::nullopt;
}

int Main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every absl::Mutex lock inside gRPC also feeds a global
  // deadlock-detection graph (a profile showed it); we rely on TSan for that instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"raftkv-bench: load generator for raftkv and etcd"};
  Settings settings;
  std::string nodes, duration_text = "10s", warmup_text = "1s", dist = "uniform";
  app.add_option("--target", settings.target, "raftkv or etcd")
      ->check(CLI::IsMember({"raftkv", "etcd"}));
  app.add_option("--nodes,--endpoints", nodes,
                 "host:port,… (raftkv: all nodes; etcd: the members to load)")
      ->required();
  app.add_option("--op", settings.op_text,
                 "set | get | get-serializable (etcd) | mixed:R (R = read fraction)");
  app.add_option("--concurrency", settings.concurrency, "requests in flight")
      ->check(CLI::Range(1, 100000));
  app.add_option("--channels", settings.channels, "gRPC channels (default min(concurrency, 8))");
  std::string rpc = "stream";
  app.add_option("--rpc", rpc,
                 "raftkv: stream (ServeClientStream, as the client library) or unary (ServeClient)")
      ->check(CLI::IsMember({"stream", "unary"}));
  app.add_option("--duration", duration_text, "measured time (default 10s)");
  app.add_option("--requests", settings.requests,
                 "measure this many requests (after the warm-up) instead of a duration")
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000'000}));
  app.add_option("--warmup", warmup_text, "unmeasured time first (default 1s)");
  app.add_option("--key-size", settings.key_size, "bytes (default 16)");
  app.add_option("--value-size", settings.value_size, "bytes (default 100)");
  app.add_option("--keyspace", settings.keyspace, "distinct keys (default 10000)")
      ->check(CLI::Range(1, 100000000));
  app.add_option("--dist", dist, "uniform or zipfian")
      ->check(CLI::IsMember({"uniform", "zipfian"}));
  app.add_flag("!--no-prefill", settings.prefill, "do not write every key before a GET run");
  app.add_flag("--json", settings.json, "one JSON line per run instead of the table row");
  app.add_option("--label", settings.label, "a name for this run in the output");
  app.add_option("--timeline", settings.timeline,
                 "write each measured request's completion time (Unix µs) and latency (µs) to "
                 "FILE, one line each");
  CLI11_PARSE(app, argc, argv);

  absl::StatusOr<std::vector<std::string>> addresses = ParseAddressList(nodes);
  if (!addresses.ok()) {
    std::fprintf(stderr, "raftkv-bench: %s\n", std::string(addresses.status().message()).c_str());
    return 2;
  }
  settings.addresses = *addresses;
  settings.all_addresses = *addresses;
  for (auto [text, target] :
       {std::pair{&duration_text, &settings.duration}, std::pair{&warmup_text, &settings.warmup}}) {
    absl::StatusOr<Duration> parsed = config::ParseDuration(*text);
    if (!parsed.ok()) {
      std::fprintf(stderr, "raftkv-bench: %s\n", std::string(parsed.status().message()).c_str());
      return 2;
    }
    *target = std::chrono::duration_cast<Clock::duration>(*parsed);
  }
  settings.zipfian = dist == "zipfian";
  settings.unary = rpc == "unary";
  if (settings.op_text.rfind("mixed:", 0) == 0) {
    settings.read_fraction = std::atof(settings.op_text.c_str() + 6);
    if (!(settings.read_fraction > 0 && settings.read_fraction < 1)) {
      std::fprintf(stderr, "raftkv-bench: --op mixed:R needs 0 < R < 1\n");
      return 2;
    }
  } else if (settings.op_text == "get-serializable") {
    if (settings.target != "etcd") {
      std::fprintf(stderr, "raftkv-bench: get-serializable is an etcd read mode\n");
      return 2;
    }
    settings.serializable = true;
  } else if (settings.op_text != "set" && settings.op_text != "get") {
    std::fprintf(stderr, "raftkv-bench: unknown --op '%s'\n", settings.op_text.c_str());
    return 2;
  }
  if (settings.target == "raftkv") {
    std::optional<std::string> leader = FindRaftkvLeader(settings.addresses);
    if (!leader) {
      std::fprintf(stderr, "raftkv-bench: no raftkv leader with a lease among %s\n", nodes.c_str());
      return 1;
    }
    settings.addresses = {*leader};
  }
  if (settings.prefill && settings.op_text != "set" && !Prefill(settings)) return 1;

  Runner runner(settings);
  std::vector<std::unique_ptr<Slot>>& slots = runner.Run();
  std::vector<uint32_t> latencies;
  std::map<std::string, uint64_t> errors;
  for (const auto& slot : slots) {
    latencies.insert(latencies.end(), slot->latencies_us.begin(), slot->latencies_us.end());
    for (const auto& [kind, count] : slot->errors) errors[kind] += count;
  }
  if (!settings.timeline.empty()) {
    std::FILE* out = std::fopen(settings.timeline.c_str(), "w");
    if (out == nullptr) {
      std::fprintf(stderr, "raftkv-bench: cannot write %s\n", settings.timeline.c_str());
      return 1;
    }
    // Steady-clock completion times to Unix time, by one offset taken now.
    const auto unix_offset = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::system_clock::now().time_since_epoch() - Clock::now().time_since_epoch());
    for (const auto& slot : slots) {
      for (size_t i = 0; i < slot->completed.size(); ++i) {
        const auto at = std::chrono::duration_cast<std::chrono::microseconds>(
                            slot->completed[i].time_since_epoch()) +
                        unix_offset;
        std::fprintf(out, "%lld %u\n", static_cast<long long>(at.count()), slot->latencies_us[i]);
      }
    }
    std::fclose(out);
  }
  std::sort(latencies.begin(), latencies.end());
  const double seconds =
      std::chrono::duration<double>(runner.measured_until() - runner.measure_from()).count();
  const double rate = seconds > 0 ? latencies.size() / seconds : 0;
  uint64_t error_count = 0;
  std::string error_json;
  for (const auto& [kind, count] : errors) {
    error_count += count;
    std::string escaped;
    for (char c : kind) escaped += (c == '"' || c == '\\') ? ' ' : c;
    error_json +=
        (error_json.empty() ? "" : ",") + ("\"" + escaped + "\":" + std::to_string(count));
  }
  const std::string label =
      settings.label.empty() ? settings.target + " " + settings.op_text : settings.label;
  if (settings.json) {
    std::printf(
        "{\"label\":\"%s\",\"target\":\"%s\",\"op\":\"%s\",\"concurrency\":%d,\"ops_per_sec\":%.1f,"
        "\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"p999_us\":%u,\"max_us\":%u,\"ops\":%zu,"
        "\"errors\":{%s}}\n",
        label.c_str(), settings.target.c_str(), settings.op_text.c_str(), settings.concurrency,
        rate, Percentile(latencies, 0.5), Percentile(latencies, 0.9), Percentile(latencies, 0.99),
        Percentile(latencies, 0.999), latencies.empty() ? 0 : latencies.back(), latencies.size(),
        error_json.c_str());
  } else {
    std::printf(
        "%-28s conc %4d  %9.0f ops/s  p50 %6u us  p90 %6u  p99 %6u  p99.9 %6u  max %7u  errors "
        "%llu\n",
        label.c_str(), settings.concurrency, rate, Percentile(latencies, 0.5),
        Percentile(latencies, 0.9), Percentile(latencies, 0.99), Percentile(latencies, 0.999),
        latencies.empty() ? 0 : latencies.back(), static_cast<unsigned long long>(error_count));
    for (const auto& [kind, count] : errors) {
      std::printf("    error %s: %llu\n", kind.c_str(), static_cast<unsigned long long>(count));
    }
  }
  return 0;
}

}  // namespace
}  // namespace raftkv::bench

int main(int argc, char** argv) { return raftkv::bench::Main(argc, argv); }
