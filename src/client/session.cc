#include "client/session.h"

#include <algorithm>

namespace raftkv::client {

ClientSession::ClientSession(uint64_t window, std::function<void()> open)
    : window_(window), open_(std::move(open)) {}

uint64_t ClientSession::client_id() const {
  MutexLock lock(&mu_);
  return client_id_;
}

std::optional<SessionTicket> ClientSession::Acquire(Start start_later, uint64_t* queued_id) {
  bool open = false;
  {
    MutexLock lock(&mu_);
    // FIFO: nobody overtakes a SET already waiting.
    if (waiting_.empty() && CanIssue()) return Issue();
    *queued_id = next_waiting_id_++;
    waiting_.push_back(Waiting{*queued_id, std::move(start_later)});
    open = NeedsOpen();
  }
  if (open) open_();
  return std::nullopt;
}

bool ClientSession::Cancel(uint64_t queued_id) {
  MutexLock lock(&mu_);
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if (it->id == queued_id) {
      waiting_.erase(it);
      return true;
    }
  }
  return false;
}

void ClientSession::Release(SessionTicket ticket, Outcome outcome) {
  std::vector<std::pair<Start, SessionTicket>> ready;
  bool open = false;
  {
    MutexLock lock(&mu_);
    // A ticket of a dropped session changes nothing: its successor has its own bookkeeping.
    if (ticket.client_id != client_id_ || client_id_ == 0) return;
    in_flight_.erase(ticket.sequence);
    if (outcome == Outcome::kExpired) {
      Drop();
    } else if (outcome == Outcome::kApplied) {
      highest_applied_ = std::max(highest_applied_, ticket.sequence);
    }
    ready = TakeStartable();
    open = NeedsOpen();
  }
  StartAll(std::move(ready), open);
}

void ClientSession::Opened(uint64_t client_id) {
  std::vector<std::pair<Start, SessionTicket>> ready;
  {
    MutexLock lock(&mu_);
    opening_ = false;
    client_id_ = client_id;
    next_sequence_ = 1;
    highest_applied_ = 0;
    in_flight_.clear();
    ready = TakeStartable();
  }
  StartAll(std::move(ready), false);
}

void ClientSession::OpenFailed(bool retry) {
  bool open = false;
  {
    MutexLock lock(&mu_);
    opening_ = false;
    open = retry && NeedsOpen();
  }
  if (open) open_();
}

bool ClientSession::CanIssue() const {
  if (client_id_ == 0) return false;
  if (next_sequence_ > highest_applied_ + window_) return false;                // rule 3
  return in_flight_.empty() || next_sequence_ - *in_flight_.begin() < window_;  // rule 2
}

SessionTicket ClientSession::Issue() {
  const SessionTicket ticket{client_id_, next_sequence_++};
  in_flight_.insert(ticket.sequence);
  return ticket;
}

void ClientSession::Drop() {
  client_id_ = 0;
  in_flight_.clear();
}

bool ClientSession::NeedsOpen() {
  if (waiting_.empty() || opening_) return false;
  // Rule 3 with nothing in flight: this session can never issue again.
  if (client_id_ != 0 && in_flight_.empty() && next_sequence_ > highest_applied_ + window_) {
    Drop();
  }
  if (client_id_ != 0) return false;
  opening_ = true;
  return true;
}

std::vector<std::pair<ClientSession::Start, SessionTicket>> ClientSession::TakeStartable() {
  std::vector<std::pair<Start, SessionTicket>> ready;
  while (!waiting_.empty() && CanIssue()) {
    ready.emplace_back(std::move(waiting_.front().start), Issue());
    waiting_.pop_front();
  }
  return ready;
}

void ClientSession::StartAll(std::vector<std::pair<Start, SessionTicket>> ready, bool open) {
  for (auto& [start_fn, ticket] : ready) start_fn(ticket);
  if (open) open_();
}

}  // namespace raftkv::client
