// Describe: the core's messages, entries, events and Readys as one line of text each — for the
// script tests (tests/raft/testdata/*.txt), the simulator's --trace, and anyone debugging.
// etcd-raft's util.go Describe* functions are the model. The wording is stable: golden files
// depend on it.
#pragma once

#include <functional>
#include <string>

#include "raft/message.h"
#include "raft/ready.h"

namespace raftkv::raft {

// How a command entry's payload is shown (the core treats it as opaque bytes); by default its size.
using PayloadFormatter = std::function<std::string(const std::string& data)>;

// "3/2 NO-OP", "4/2 SET x" — index/term and what the entry holds.
std::string Describe(const Entry& entry, const PayloadFormatter& payload = nullptr);
// "0->1 AppendEntries term=2 prev=1/1 commit=1 lease=80ms entries=[2/2 NO-OP]"
std::string Describe(const Message& message, const PayloadFormatter& payload = nullptr);
// "BecameLeader term=2", "VoteGranted to=1 term=3", "WaitingForOldLease 61ms"
std::string Describe(const Event& event);
// The parts of a Ready that are present, "; "-separated: "hard_state term=2 vote=1; entries=[...];
// committed=[...]; 2 messages, 1 after persist".
std::string Describe(const Ready& ready, const PayloadFormatter& payload = nullptr);

}  // namespace raftkv::raft
