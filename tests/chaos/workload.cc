#include "tests/chaos/workload.h"

#include <random>

namespace raftkv::chaos {

check::Outcome SetOutcome(const absl::Status& status) {
  if (status.ok()) return check::Outcome::kOk;
  // Refused before it could be proposed: certainly not applied.
  if (status.code() == absl::StatusCode::kInvalidArgument) return check::Outcome::kFail;
  // Deadline, unavailable, aborted session, cancelled: it may have been applied.
  return check::Outcome::kIndeterminate;
}

Workload::Workload(WorkloadOptions options, SteadyClock::time_point origin)
    : options_(std::move(options)), origin_(origin) {}

Workload::~Workload() { Stop(); }

int64_t Workload::NowNs() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - origin_).count();
}

void Workload::Start() {
  for (int c = 0; c < options_.clients; ++c) {
    threads_.emplace_back([this, c] { RunClient(static_cast<uint32_t>(c)); });
  }
}

void Workload::Stop() {
  stopping_.store(true);
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

void Workload::Record(check::Operation op) {
  MutexLock lock(&mu_);
  history_.push_back(std::move(op));
}

std::vector<check::Operation> Workload::History() const {
  MutexLock lock(&mu_);
  return history_;
}

void Workload::RunClient(uint32_t client_id) {
  client::ClientOptions client_options;
  client_options.addresses = options_.addresses;
  client_options.deadline = options_.deadline;
  client_options.rpc_timeout = options_.rpc_timeout;
  auto client = client::Client::Create(client_options);
  if (!client.ok()) return;
  std::mt19937_64 random(options_.seed * 1000 + client_id);
  uint64_t written = 0;
  while (!stopping_.load()) {
    check::Operation op;
    op.id = next_op_id_.fetch_add(1);
    op.client = client_id;
    op.key = KeyName(static_cast<int>(random() % static_cast<uint64_t>(options_.keys)));
    const bool reader = client_id < static_cast<uint32_t>(options_.readers);
    const bool read =
        reader || std::uniform_real_distribution<double>(0, 1)(random) < options_.read_fraction;
    op.invoke_ns = NowNs();
    if (read) {
      op.kind = check::OpKind::kRead;
      absl::StatusOr<client::GetResult> result = (*client)->Get(op.key);
      op.complete_ns = NowNs();
      // A failed read changed nothing: it is simply dropped from the check.
      op.outcome = result.ok() ? check::Outcome::kOk : check::Outcome::kFail;
      if (result.ok() && result->found) op.value = result->value;
    } else {
      op.kind = check::OpKind::kWrite;
      // The run's seed in every value: values of some other run (a stray node) cannot pass for
      // ours.
      op.value = "s" + std::to_string(options_.seed) + "c" + std::to_string(client_id) + "-" +
                 std::to_string(++written);
      absl::Status status = (*client)->Set(op.key, *op.value);
      op.complete_ns = NowNs();
      op.outcome = SetOutcome(status);
    }
    Record(std::move(op));
  }
}

void Workload::FinalReads() {
  client::ClientOptions client_options;
  client_options.addresses = options_.addresses;
  client_options.deadline = client::Millis(10'000);
  auto client = client::Client::Create(client_options);
  if (!client.ok()) return;
  for (int key = 0; key < options_.keys; ++key) {
    check::Operation op;
    op.id = next_op_id_.fetch_add(1);
    op.client = static_cast<uint32_t>(options_.clients);  // the checker's "final reader"
    op.kind = check::OpKind::kRead;
    op.key = KeyName(key);
    op.invoke_ns = NowNs();
    absl::StatusOr<client::GetResult> result = (*client)->Get(op.key);
    op.complete_ns = NowNs();
    op.outcome = result.ok() ? check::Outcome::kOk : check::Outcome::kFail;
    if (result.ok() && result->found) op.value = result->value;
    Record(std::move(op));
  }
}

}  // namespace raftkv::chaos
