#include "common/grpc_callback_pin.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <mutex>

#include "raftkv.grpc.pb.h"

namespace raftkv {

void PinGrpcCallbackQueue() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Deliberately leaked: they must outlive every other channel. The call fails at once (nothing
    // listens on that socket path); creating it is what takes the channel's queue reference.
    struct PinCall {
      std::shared_ptr<grpc::Channel> channel;
      std::unique_ptr<KV::Stub> stub;
      grpc::ClientContext context;
      StatusArgs request;
      StatusReply reply;
    };
    auto* pin = new PinCall;
    pin->channel = grpc::CreateChannel("unix:/nonexistent/raftkv-callback-queue-pin",
                                       grpc::InsecureChannelCredentials());
    pin->stub = KV::NewStub(pin->channel);
    pin->context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1));
    pin->stub->async()->Status(&pin->context, &pin->request, &pin->reply, [](grpc::Status) {});
  });
}

}  // namespace raftkv
