#include "client/session.h"

namespace raftkv::client {

ClientSession::ClientSession(uint64_t window) : window_(window) {
  MutexLock lock(&mu_);
  random_.seed(std::random_device{}() ^ (uint64_t{std::random_device{}()} << 32));
  Renew();
}

uint64_t ClientSession::client_id() const {
  MutexLock lock(&mu_);
  return client_id_;
}

std::optional<SessionTicket> ClientSession::Acquire(Start start_later, uint64_t* queued_id) {
  MutexLock lock(&mu_);
  // FIFO: nobody overtakes a SET already waiting.
  if (waiting_.empty() && CanIssue()) return Issue();
  *queued_id = next_waiting_id_++;
  waiting_.push_back(Waiting{*queued_id, std::move(start_later)});
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
  {
    MutexLock lock(&mu_);
    // A ticket of an abandoned session changes nothing: its successor has its own bookkeeping.
    if (ticket.client_id != client_id_) return;
    in_flight_.erase(ticket.sequence);
    if (outcome == Outcome::kExpired || (ticket.sequence == 1 && outcome != Outcome::kApplied)) {
      Renew();
    } else if (ticket.sequence == 1) {
      open_ = true;
    }
    ready = TakeStartable();
  }
  for (auto& [start_fn, ticket] : ready) start_fn(ticket);
}

bool ClientSession::CanIssue() const {
  if (!open_) return next_sequence_ == 1;  // only the opener, and only once
  return in_flight_.empty() || next_sequence_ - *in_flight_.begin() < window_;
}

SessionTicket ClientSession::Issue() {
  const SessionTicket ticket{client_id_, next_sequence_++};
  in_flight_.insert(ticket.sequence);
  return ticket;
}

void ClientSession::Renew() {
  do {
    client_id_ = random_();
  } while (client_id_ == 0);  // 0 means "no session" on the wire
  next_sequence_ = 1;
  open_ = false;
  in_flight_.clear();
}

std::vector<std::pair<ClientSession::Start, SessionTicket>> ClientSession::TakeStartable() {
  std::vector<std::pair<Start, SessionTicket>> ready;
  while (!waiting_.empty() && CanIssue()) {
    ready.emplace_back(std::move(waiting_.front().start), Issue());
    waiting_.pop_front();
  }
  return ready;
}

}  // namespace raftkv::client
