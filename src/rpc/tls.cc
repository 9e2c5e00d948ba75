#include "rpc/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "common/mutex.h"
#include "storage/file_util.h"

namespace raftkv::rpc {
namespace {

// OpenSSL objects freed on scope exit.
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct StoreFree {
  void operator()(X509_STORE* store) const { X509_STORE_free(store); }
};
struct StoreContextFree {
  void operator()(X509_STORE_CTX* context) const { X509_STORE_CTX_free(context); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Cert = std::unique_ptr<X509, X509Free>;

Bio MemoryBio(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Every certificate in a PEM text (a CA file may hold several).
std::vector<Cert> ReadCertificates(const std::string& pem) {
  std::vector<Cert> certs;
  Bio bio = MemoryBio(pem);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // the end of the text reads as an error
  return certs;
}

std::string CommonName(X509* cert) {
  X509_NAME* subject = X509_get_subject_name(cert);
  const int position = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (position < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, position));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                     static_cast<size_t>(ASN1_STRING_length(data)));
}

absl::StatusOr<std::string> ReadPem(const std::string& path, const std::string& setting) {
  if (path.empty()) {
    return absl::InvalidArgumentError(setting +
                                      " is not set: TLS needs the CA, the certificate "
                                      "and its key (scripts/make-certs makes them)");
  }
  absl::StatusOr<std::string> text = storage::ReadWholeFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(setting + ": cannot read " + path + ": " +
                                      std::string(text.status().message()));
  }
  return *text;
}

}  // namespace

absl::StatusOr<TlsMaterial> LoadTls(const TlsFiles& files, bool for_client) {
  const std::string ca_setting = for_client ? "the CA file (--cacert)" : "[tls] CA_FILE";
  const std::string cert_setting = for_client ? "the certificate (--cert)" : "[tls] CERT_FILE";
  const std::string key_setting = for_client ? "the key (--key)" : "[tls] KEY_FILE";
  TlsMaterial tls;
  for (auto [path, setting, out] : {std::tuple{&files.ca_file, &ca_setting, &tls.ca},
                                    std::tuple{&files.cert_file, &cert_setting, &tls.cert},
                                    std::tuple{&files.key_file, &key_setting, &tls.key}}) {
    absl::StatusOr<std::string> text = ReadPem(*path, *setting);
    if (!text.ok()) return text.status();
    *out = std::move(*text);
  }
  std::vector<Cert> authorities = ReadCertificates(tls.ca);
  if (authorities.empty()) {
    return absl::InvalidArgumentError(ca_setting + ": " + files.ca_file +
                                      " holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  }
  std::vector<Cert> chain = ReadCertificates(tls.cert);
  if (chain.empty()) {
    return absl::InvalidArgumentError(cert_setting + ": " + files.cert_file +
                                      " holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  }
  Bio key_bio = MemoryBio(tls.key);
  // A password callback that refuses: an encrypted key is an error here, never a prompt.
  std::unique_ptr<EVP_PKEY, KeyFree> key(PEM_read_bio_PrivateKey(
      key_bio.get(), nullptr, [](char*, int, int, void*) { return -1; }, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(key_setting + ": " + files.key_file +
                                      " holds no unencrypted PEM private key");
  }
  if (X509_check_private_key(chain[0].get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(key_setting + ": " + files.key_file +
                                      " is not the key of the certificate in " + files.cert_file);
  }
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  for (const Cert& authority : authorities) X509_STORE_add_cert(store.get(), authority.get());
  STACK_OF(X509)* intermediates = sk_X509_new_null();
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(intermediates, chain[i].get());
  // The chain checked for one TLS purpose: X509_V_OK, or why not.
  auto check = [&](int purpose) {
    std::unique_ptr<X509_STORE_CTX, StoreContextFree> verify(X509_STORE_CTX_new());
    if (intermediates == nullptr || verify == nullptr) return X509_V_ERR_OUT_OF_MEM;
    if (X509_STORE_CTX_init(verify.get(), store.get(), chain[0].get(), intermediates) != 1 ||
        X509_STORE_CTX_set_purpose(verify.get(), purpose) != 1) {
      return X509_V_ERR_UNSPECIFIED;  // set-up failed, not a check
    }
    if (X509_verify_cert(verify.get()) == 1) return X509_V_OK;
    const int error = X509_STORE_CTX_get_error(verify.get());
    return error == X509_V_OK ? X509_V_ERR_UNSPECIFIED : error;
  };
  // A client's certificate must be fit for TLS clients; a node's for both ends, since a node
  // calls its peers and serves them.
  int error = check(X509_PURPOSE_SSL_CLIENT);
  if (error == X509_V_OK && !for_client) error = check(X509_PURPOSE_SSL_SERVER);
  sk_X509_free(intermediates);
  ERR_clear_error();
  if (error != X509_V_OK) {
    return absl::InvalidArgumentError(cert_setting + ": the certificate in " + files.cert_file +
                                      " does not check out against the CA in " + files.ca_file +
                                      ": " + X509_verify_cert_error_string(error));
  }
  tls.common_name = CommonName(chain[0].get());
  return tls;
}

bool CertificateValidFor(const TlsMaterial& tls, const std::string& name) {
  std::vector<Cert> chain = ReadCertificates(tls.cert);
  if (chain.empty()) return false;
  const bool valid = X509_check_host(chain[0].get(), name.data(), name.size(),
                                     X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, nullptr) == 1;
  ERR_clear_error();
  return valid;
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(
    const std::optional<TlsMaterial>& tls) {
  if (!tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls->ca;
  options.pem_private_key = tls->key;
  options.pem_cert_chain = tls->cert;
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const std::optional<TlsMaterial>& tls) {
  if (!tls) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls->ca;
  options.pem_key_cert_pairs.push_back({tls->key, tls->cert});
  return grpc::SslServerCredentials(options);
}

namespace {

Mutex refusals_mu;
std::string* refusals_program ABSL_GUARDED_BY(refusals_mu) = nullptr;
std::set<std::string>* refusals_seen ABSL_GUARDED_BY(refusals_mu) = nullptr;
bool report_refusals_at_all ABSL_GUARDED_BY(refusals_mu) = true;
constexpr size_t kMaxRefusalReasons = 32;  // distinct reasons reported; later ones are dropped

// What an OpenSSL handshake error means for a raftkv operator.
std::string Explain(const std::string& reason) {
  if (absl::StrContains(reason, "wrong version number") ||
      absl::StrContains(reason, "http request")) {
    return "the other side speaks plaintext: a client without --cacert/--cert/--key, or a node "
           "without [tls]";
  }
  if (absl::StrContains(reason, "did not return a certificate") ||
      absl::StrContains(reason, "certificate required")) {
    return "the other side presented no certificate";
  }
  if (absl::StrContains(reason, "unknown ca") || absl::StrContains(reason, "certificate verify")) {
    return "a certificate not signed by this cluster's CA (on one side or the other)";
  }
  return "see the OpenSSL reason";
}

void LogToStderr(gpr_log_func_args* args) {
  const std::string message = args->message;
  MutexLock lock(&refusals_mu);
  const char* program = refusals_program->c_str();
  const size_t handshake = message.find("Handshake failed");
  if (handshake == std::string::npos) {
    std::fprintf(stderr, "%s: gRPC %s %s:%d: %s\n", program,
                 gpr_log_severity_string(args->severity), args->file, args->line, message.c_str());
    return;
  }
  // "Handshake failed with fatal error SSL_ERROR_SSL: error:0A00010B:SSL routines::wrong
  // version number." -> "wrong version number"
  std::string reason = message.substr(handshake);
  if (const size_t colons = reason.rfind("::"); colons != std::string::npos) {
    reason = reason.substr(colons + 2);
  }
  while (!reason.empty() && (reason.back() == '.' || reason.back() == ' ')) reason.pop_back();
  if (!report_refusals_at_all || refusals_seen->size() >= kMaxRefusalReasons ||
      !refusals_seen->insert(reason).second) {
    return;
  }
  std::fprintf(stderr,
               "%s: TLS: refused a connection: %s (%s); later refusals for this reason are not "
               "logged\n",
               program, Explain(reason).c_str(), reason.c_str());
}

}  // namespace

void ReportTlsRefusalsOnce(const std::string& program, bool report_refusals) {
  {
    MutexLock lock(&refusals_mu);
    report_refusals_at_all = report_refusals;
    if (refusals_program == nullptr) {
      refusals_program = new std::string(program);
      refusals_seen = new std::set<std::string>();
    }
  }
  gpr_set_log_function(LogToStderr);
}

std::string NodeCertificateName(NodeId id) { return "node" + std::to_string(id); }

std::optional<NodeId> NodeOfCertificate(const std::string& common_name, int cluster_size) {
  for (NodeId id = 0; id < cluster_size; ++id) {
    if (common_name == NodeCertificateName(id)) return id;
  }
  return std::nullopt;
}

std::string PeerCommonName(const grpc::ServerContextBase& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return "";
  const std::vector<grpc::string_ref> names = auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  if (names.empty()) return "";
  return std::string(names.front().data(), names.front().size());
}

grpc::Status CheckSender(const std::string& common_name, NodeId from) {
  const std::string expected = NodeCertificateName(from);
  if (common_name == expected) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      "a Raft message from node " + std::to_string(from) +
                          " must come over a connection with certificate \"" + expected +
                          "\", not \"" + common_name +
                          "\" (node ids are bound to certificate names; scripts/make-certs)");
}

}  // namespace raftkv::rpc
