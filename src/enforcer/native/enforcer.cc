// The native half of the enforcer: a thin layer over libbpf. It loads BPF objects,
// attaches and pins programs, exposes generic map operations (single, many, batch),
// polls the ring buffer on its own thread and hands records to JavaScript through a
// thread-safe function. What to write where (the plan encoding, generation swaps) is
// decided in TypeScript (src/enforcer/); this file only moves bytes.
//
// Built by scripts/build-enforcer (not node-gyp): c++ -shared against Node's headers and
// node-addon-api, linked with the system libbpf.

#define NAPI_VERSION 8
#define NAPI_CPP_EXCEPTIONS
#include <napi.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../../../bpf/lsm/abi.h"

namespace {

// ---- libbpf's log, captured so that failures carry libbpf's words and the verifier log ----

std::mutex g_log_mutex;
std::string g_log;
constexpr size_t kMaxLog = 4 << 20;

int CapturePrint(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  // One call may carry a whole verifier log (megabytes): size it first.
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n <= 0) return 0;
  std::string line((size_t)n + 1, '\0');
  vsnprintf(&line[0], line.size(), fmt, ap);
  line.resize((size_t)n);
  std::lock_guard<std::mutex> lock(g_log_mutex);
  if (g_log.size() < kMaxLog) g_log += line.substr(0, kMaxLog - g_log.size());
  return 0;
}

std::string TakeLog() {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  std::string out;
  out.swap(g_log);
  return out;
}

void ClearLog() { TakeLog(); }

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// An Error whose message names what failed, libbpf's own error lines and the verifier
// log's tail; the whole log is attached as `libbpfLog`.
Napi::Error BpfError(Napi::Env env, const std::string& what, int err) {
  std::string log = TakeLog();
  std::vector<std::string> lines = Lines(log);
  std::string libbpf_lines;
  std::vector<std::string> verifier;
  bool in_verifier = false;
  for (const std::string& l : lines) {
    if (l.find("-- BEGIN PROG LOAD LOG --") != std::string::npos) {
      in_verifier = true;
      verifier.clear();
      continue;
    }
    if (l.find("-- END PROG LOAD LOG --") != std::string::npos) {
      in_verifier = false;
      continue;
    }
    if (in_verifier) verifier.push_back(l);
    else libbpf_lines += (libbpf_lines.empty() ? "" : "\n") + l;
  }
  std::string tail;
  size_t from = verifier.size() > 30 ? verifier.size() - 30 : 0;
  for (size_t i = from; i < verifier.size(); i++) tail += verifier[i] + "\n";
  std::string message = what;
  if (err) message += ": " + std::string(strerror(err < 0 ? -err : err));
  if (!libbpf_lines.empty()) message += "\n" + libbpf_lines;
  if (!tail.empty()) message += "\nverifier log (last lines):\n" + tail;
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("errno", Napi::Number::New(env, err < 0 ? -err : err));
  e.Set("libbpfLog", Napi::String::New(env, log));
  e.Set("verifierLogTail", Napi::String::New(env, tail));
  return e;
}

Napi::Error ErrnoError(Napi::Env env, const std::string& what, int err) {
  int e = err < 0 ? -err : err;
  Napi::Error error = Napi::Error::New(env, what + ": " + strerror(e));
  error.Set("errno", Napi::Number::New(env, e));
  return error;
}

int ArgInt(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Uint32Value(); }
std::string ArgString(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::String>().Utf8Value(); }

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBuffer()) throw Napi::TypeError::New(info.Env(), "expected a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

bool PathExists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

void MakeDirs(const std::string& path) {
  std::string cur;
  for (size_t i = 0; i <= path.size(); i++) {
    if (i == path.size() || path[i] == '/') {
      if (!cur.empty()) mkdir(cur.c_str(), 0700);
    }
    if (i < path.size()) cur += path[i];
  }
}

// ---- the loaded object ----

struct Link {
  std::string name;    // program name
  std::string target;  // what it is attached to
  std::string pin;     // pin path
  bpf_link* link;
};

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "BpfObject",
                       {
                           InstanceMethod("mapFd", &BpfObject::MapFd),
                           InstanceMethod("maps", &BpfObject::Maps),
                           InstanceMethod("programs", &BpfObject::Programs),
                           InstanceMethod("attach", &BpfObject::Attach),
                           InstanceMethod("links", &BpfObject::LinksInfo),
                           InstanceMethod("detach", &BpfObject::Detach),
                           InstanceMethod("startEvents", &BpfObject::StartEvents),
                           InstanceMethod("stopEvents", &BpfObject::StopEvents),
                           InstanceMethod("close", &BpfObject::Close),
                       });
  }

  // new BpfObject(objectPath, { pinDir?, reuseMaps?: boolean, programs?: string[], maxEntries?: { [map]: number } })
  explicit BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
    Napi::Env env = info.Env();
    std::string path = ArgString(info, 0);
    Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    if (opts.Has("pinDir") && opts.Get("pinDir").IsString()) pin_dir_ = opts.Get("pinDir").As<Napi::String>().Utf8Value();
    bool reuse = opts.Has("reuseMaps") && opts.Get("reuseMaps").ToBoolean();

    ClearLog();
    LIBBPF_OPTS(bpf_object_open_opts, open_opts);
    obj_ = bpf_object__open_file(path.c_str(), &open_opts);
    if (!obj_) {
      int err = -errno;
      obj_ = nullptr;
      throw BpfError(env, "opening BPF object " + path, err);
    }
    if (opts.Has("programs") && opts.Get("programs").IsArray()) {
      Napi::Array wanted = opts.Get("programs").As<Napi::Array>();
      std::vector<std::string> names;
      for (uint32_t i = 0; i < wanted.Length(); i++) names.push_back(wanted.Get(i).As<Napi::String>().Utf8Value());
      bpf_program* prog;
      bpf_object__for_each_program(prog, obj_) {
        bool keep = false;
        for (const std::string& n : names) keep = keep || n == bpf_program__name(prog);
        bpf_program__set_autoload(prog, keep);
      }
    }
    if (opts.Has("maxEntries") && opts.Get("maxEntries").IsObject()) {
      Napi::Object sizes = opts.Get("maxEntries").As<Napi::Object>();
      Napi::Array names = sizes.GetPropertyNames();
      for (uint32_t i = 0; i < names.Length(); i++) {
        std::string name = names.Get(i).As<Napi::String>().Utf8Value();
        bpf_map* map = bpf_object__find_map_by_name(obj_, name.c_str());
        if (!map) {
          Cleanup();
          throw Napi::Error::New(env, "no map named " + name + " in " + path);
        }
        uint32_t entries = sizes.Get(name).As<Napi::Number>().Uint32Value();
        // A pinned map this load takes over keeps its size: libbpf reuses only a map of the
        // same size, and refusing would lose the rules in force for a buffer's size.
        if (reuse && !pin_dir_.empty()) {
          int fd = bpf_obj_get((pin_dir_ + "/maps/" + name).c_str());
          if (fd >= 0) {
            bpf_map_info pinned = {};
            uint32_t len = sizeof(pinned);
            if (bpf_obj_get_info_by_fd(fd, &pinned, &len) == 0) entries = pinned.max_entries;
            close(fd);
          }
        }
        if (int err = bpf_map__set_max_entries(map, entries)) {
          Cleanup();
          throw BpfError(env, "setting the size of map " + name, err);
        }
      }
    }
    if (!pin_dir_.empty()) {
      std::string maps_dir = pin_dir_ + "/maps";
      MakeDirs(maps_dir);
      bpf_map* map;
      bpf_object__for_each_map(map, obj_) {
        std::string pin = maps_dir + "/" + bpf_map__name(map);
        if (!reuse && PathExists(pin)) unlink(pin.c_str());
        if (bpf_map__set_pin_path(map, pin.c_str()) < 0) {
          int err = -errno;
          Cleanup();
          throw BpfError(env, "setting the pin path of map " + std::string(bpf_map__name(map)), err);
        }
      }
    }
    int err = bpf_object__load(obj_);
    if (err) {
      Cleanup();
      throw BpfError(env, "loading BPF object " + path, err);
    }
    TakeLog();
  }

  ~BpfObject() override { Cleanup(); }

 private:
  bpf_object* obj_ = nullptr;
  std::string pin_dir_;
  std::vector<Link> links_;

  // ring buffer polling
  ring_buffer* rb_ = nullptr;
  std::thread poller_;
  std::atomic<bool> stop_{false};
  Napi::ThreadSafeFunction tsfn_;
  bool polling_ = false;
  napi_env env_ = nullptr;
  // Records polled and not yet handed to JavaScript: their bytes back to back, and where each ends.
  struct Batch {
    std::string bytes;
    std::vector<uint32_t> ends;
  };
  Batch batch_;

  static void OnEnvCleanup(void* self) { static_cast<BpfObject*>(self)->StopPolling(); }

  void StopPolling() {
    if (!polling_) return;
    stop_ = true;
    if (poller_.joinable()) poller_.join();
    napi_remove_env_cleanup_hook(env_, &BpfObject::OnEnvCleanup, this);
    tsfn_.Release();
    if (rb_) ring_buffer__free(rb_);
    rb_ = nullptr;
    polling_ = false;
  }

  void Cleanup() {
    StopPolling();
    for (Link& l : links_) {
      // Pinned links stay attached (a restarted agent takes them over); others detach.
      bpf_link__destroy(l.link);
    }
    links_.clear();
    if (obj_) bpf_object__close(obj_);
    obj_ = nullptr;
  }

  bpf_object* Obj(Napi::Env env) {
    if (!obj_) throw Napi::Error::New(env, "BPF object is closed");
    return obj_;
  }

  Napi::Value MapFd(const Napi::CallbackInfo& info) {
    std::string name = ArgString(info, 0);
    bpf_map* map = bpf_object__find_map_by_name(Obj(info.Env()), name.c_str());
    if (!map) throw Napi::Error::New(info.Env(), "no map named " + name);
    return Napi::Number::New(info.Env(), bpf_map__fd(map));
  }

  Napi::Value Maps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    bpf_map* map;
    uint32_t i = 0;
    bpf_object__for_each_map(map, Obj(env)) {
      Napi::Object m = Napi::Object::New(env);
      m.Set("name", bpf_map__name(map));
      m.Set("fd", bpf_map__fd(map));
      m.Set("type", (int)bpf_map__type(map));
      m.Set("keySize", bpf_map__key_size(map));
      m.Set("valueSize", bpf_map__value_size(map));
      m.Set("maxEntries", bpf_map__max_entries(map));
      out.Set(i++, m);
    }
    return out;
  }

  Napi::Value Programs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    bpf_program* prog;
    uint32_t i = 0;
    bpf_object__for_each_program(prog, Obj(env)) {
      Napi::Object p = Napi::Object::New(env);
      p.Set("name", bpf_program__name(prog));
      p.Set("section", bpf_program__section_name(prog));
      int fd = bpf_program__fd(prog);
      p.Set("fd", fd);
      if (fd >= 0) {
        bpf_prog_info pi;
        memset(&pi, 0, sizeof pi);
        __u32 len = sizeof pi;
        if (bpf_obj_get_info_by_fd(fd, &pi, &len) == 0) {
          p.Set("id", pi.id);
          p.Set("runCount", Napi::BigInt::New(env, (uint64_t)pi.run_cnt));
          p.Set("runTimeNs", Napi::BigInt::New(env, (uint64_t)pi.run_time_ns));
          p.Set("recursionMisses", Napi::BigInt::New(env, (uint64_t)pi.recursion_misses));
          p.Set("verifiedInsns", pi.verified_insns);
          p.Set("xlatedBytes", pi.xlated_prog_len);
        }
      }
      out.Set(i++, p);
    }
    return out;
  }

  // Pins l at pinDir/links/<key>, replacing an older pin there only after the new link
  // is attached: the old program keeps running until the new one runs (no gap).
  void PinLink(Napi::Env env, Link& l, const std::string& key) {
    if (pin_dir_.empty()) return;
    std::string dir = pin_dir_ + "/links";
    MakeDirs(dir);
    l.pin = dir + "/" + key;
    int old = PathExists(l.pin) ? bpf_obj_get(l.pin.c_str()) : -1;
    if (PathExists(l.pin)) unlink(l.pin.c_str());
    int err = bpf_link__pin(l.link, l.pin.c_str());
    if (old >= 0) close(old);  // the old link detaches with its last reference
    if (err) throw BpfError(env, "pinning link " + l.pin, err);
  }

  // attach([{ program, kind: "raw_tp"|"tracepoint"|"cgroup"|"auto", target, key }])
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array specs = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < specs.Length(); i++) {
      Napi::Object s = specs.Get(i).As<Napi::Object>();
      std::string name = s.Get("program").As<Napi::String>().Utf8Value();
      std::string kind = s.Get("kind").As<Napi::String>().Utf8Value();
      std::string target = s.Get("target").As<Napi::String>().Utf8Value();
      std::string key = s.Get("key").As<Napi::String>().Utf8Value();
      bpf_program* prog = bpf_object__find_program_by_name(Obj(env), name.c_str());
      if (!prog) throw Napi::Error::New(env, "no program named " + name);
      ClearLog();
      bpf_link* link = nullptr;
      if (kind == "raw_tp") {
        link = bpf_program__attach_raw_tracepoint(prog, target.c_str());
      } else if (kind == "tracepoint") {
        size_t slash = target.find('/');
        if (slash == std::string::npos) throw Napi::Error::New(env, "tracepoint target must be category/name");
        link = bpf_program__attach_tracepoint(prog, target.substr(0, slash).c_str(), target.substr(slash + 1).c_str());
      } else if (kind == "cgroup") {
        int cg = open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cg < 0) throw ErrnoError(env, "opening cgroup " + target, errno);
        link = bpf_program__attach_cgroup(prog, cg);
        int saved = errno;
        close(cg);
        errno = saved;
      } else if (kind == "auto") {
        // lsm/*, fmod_ret/*, kprobe/*: the section names the attach point
        link = bpf_program__attach(prog);
      } else {
        throw Napi::Error::New(env, "unknown attach kind " + kind);
      }
      if (!link) throw BpfError(env, "attaching " + name + " to " + kind + ":" + target, -errno);
      links_.push_back(Link{name, kind + ":" + target, "", link});
      PinLink(env, links_.back(), key);
    }
    TakeLog();
    return LinksInfo(info);
  }

  Napi::Value LinksInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    for (uint32_t i = 0; i < links_.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("program", links_[i].name);
      o.Set("target", links_[i].target);
      o.Set("pin", links_[i].pin);
      out.Set(i, o);
    }
    return out;
  }

  // Detaches every link of this object, and every link pinned under pinDir/links.
  Napi::Value Detach(const Napi::CallbackInfo& info) {
    for (Link& l : links_) {
      if (!l.pin.empty()) bpf_link__unpin(l.link);
      bpf_link__destroy(l.link);
    }
    links_.clear();
    return info.Env().Undefined();
  }

  static int OnRecord(void* ctx, void* data, size_t size) {
    auto* self = static_cast<BpfObject*>(ctx);
    self->batch_.bytes.append(static_cast<const char*>(data), size);
    self->batch_.ends.push_back(static_cast<uint32_t>(self->batch_.bytes.size()));
    return 0;
  }

  // startEvents(mapName, callback(bytes: Buffer, ends: Uint32Array), { unref?: boolean })
  // One buffer a batch, not one a record: at tens of thousands of records a second, a
  // buffer each is as many native allocations for the garbage collector to release.
  Napi::Value StartEvents(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (polling_) throw Napi::Error::New(env, "already polling events");
    std::string name = ArgString(info, 0);
    Napi::Function cb = info[1].As<Napi::Function>();
    bool unref = info.Length() > 2 && info[2].IsObject() && info[2].As<Napi::Object>().Get("unref").ToBoolean();
    bpf_map* map = bpf_object__find_map_by_name(Obj(env), name.c_str());
    if (!map) throw Napi::Error::New(env, "no map named " + name);
    ClearLog();
    rb_ = ring_buffer__new(bpf_map__fd(map), &BpfObject::OnRecord, this, nullptr);
    if (!rb_) throw BpfError(env, "creating the ring buffer reader", -errno);
    // A bounded queue: when JavaScript falls behind, the poller waits, the ring buffer
    // fills, and the kernel counts the records it cannot write (never silent).
    tsfn_ = Napi::ThreadSafeFunction::New(env, cb, "palisade-events", 256, 1);
    if (unref) tsfn_.Unref(env);
    stop_ = false;
    polling_ = true;
    env_ = env;
    napi_add_env_cleanup_hook(env, &BpfObject::OnEnvCleanup, this);
    poller_ = std::thread([this]() {
      while (!stop_) {
        int n = ring_buffer__poll(rb_, 100);
        if (n < 0 && n != -EINTR) break;
        if (batch_.ends.empty()) continue;
        auto* records = new Batch();
        std::swap(*records, batch_);
        auto deliver = [](Napi::Env env, Napi::Function fn, Batch* recs) {
          if (env != nullptr && fn != nullptr) {
            Napi::Buffer<uint8_t> bytes = Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(recs->bytes.data()), recs->bytes.size());
            Napi::ArrayBuffer ends = Napi::ArrayBuffer::New(env, recs->ends.size() * sizeof(uint32_t));
            memcpy(ends.Data(), recs->ends.data(), recs->ends.size() * sizeof(uint32_t));
            fn.Call({bytes, Napi::Uint32Array::New(env, recs->ends.size(), ends, 0)});
          }
          delete recs;
        };
        // Never block: the main thread may be waiting for this thread in StopPolling.
        napi_status st;
        while ((st = tsfn_.NonBlockingCall(records, deliver)) == napi_queue_full && !stop_)
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (st != napi_ok) {
          delete records;
          if (st != napi_queue_full) break;
        }
      }
    });
    return env.Undefined();
  }

  Napi::Value StopEvents(const Napi::CallbackInfo& info) {
    StopPolling();
    return info.Env().Undefined();
  }

  // close({ detach?: boolean, unpinMaps?: boolean })
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool detach = false, unpin_maps = false;
    if (info.Length() > 0 && info[0].IsObject()) {
      Napi::Object o = info[0].As<Napi::Object>();
      detach = o.Get("detach").ToBoolean();
      unpin_maps = o.Get("unpinMaps").ToBoolean();
    }
    StopPolling();
    for (Link& l : links_) {
      // Destroying closes our descriptors; a link still pinned stays attached through its pin.
      if (detach && !l.pin.empty()) bpf_link__unpin(l.link);
      bpf_link__destroy(l.link);
    }
    links_.clear();
    if (obj_ && unpin_maps && !pin_dir_.empty()) bpf_object__unpin_maps(obj_, nullptr);
    if (obj_) bpf_object__close(obj_);
    obj_ = nullptr;
    return env.Undefined();
  }
};

// ---- map operations on fds (module functions) ----

// mapUpdate(fd, key, value, flags)
Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  auto key = ArgBuffer(info, 1);
  auto value = ArgBuffer(info, 2);
  uint64_t flags = info.Length() > 3 ? ArgU32(info, 3) : BPF_ANY;
  if (bpf_map_update_elem(ArgInt(info, 0), key.Data(), value.Data(), flags) < 0)
    throw ErrnoError(info.Env(), "map update", errno);
  return info.Env().Undefined();
}

// mapUpdateMany(fd, keys, values, keySize, valueSize, { batch?: boolean, flags?: number })
// Writes count = keys.length / keySize entries; with batch, one BPF_MAP_UPDATE_BATCH call.
Napi::Value MapUpdateMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  auto keys = ArgBuffer(info, 1);
  auto values = ArgBuffer(info, 2);
  uint32_t ks = ArgU32(info, 3), vs = ArgU32(info, 4);
  bool batch = false;
  uint64_t flags = BPF_ANY;
  if (info.Length() > 5 && info[5].IsObject()) {
    Napi::Object o = info[5].As<Napi::Object>();
    batch = o.Get("batch").ToBoolean();
    if (o.Get("flags").IsNumber()) flags = o.Get("flags").As<Napi::Number>().Uint32Value();
  }
  if (ks == 0 || keys.Length() % ks != 0) throw Napi::Error::New(env, "keys length is not a multiple of keySize");
  uint32_t count = keys.Length() / ks;
  if (values.Length() != (size_t)count * vs) throw Napi::Error::New(env, "values length does not match keys");
  if (count == 0) return Napi::Number::New(env, 0);
  if (batch) {
    uint32_t done = count;
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
    if (bpf_map_update_batch(fd, keys.Data(), values.Data(), &done, &opts) < 0) {
      int err = errno;
      throw ErrnoError(env, "batch map update (" + std::to_string(done) + " of " + std::to_string(count) + " written)", err);
    }
    return Napi::Number::New(env, done);
  }
  for (uint32_t i = 0; i < count; i++) {
    if (bpf_map_update_elem(fd, keys.Data() + (size_t)i * ks, values.Data() + (size_t)i * vs, flags) < 0) {
      int err = errno;
      throw ErrnoError(env, "map update (entry " + std::to_string(i) + " of " + std::to_string(count) + ")", err);
    }
  }
  return Napi::Number::New(env, count);
}

// mapDeleteMany(fd, keys, keySize): deletes each; missing keys are not an error.
Napi::Value MapDeleteMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  auto keys = ArgBuffer(info, 1);
  uint32_t ks = ArgU32(info, 2);
  if (ks == 0 || keys.Length() % ks != 0) throw Napi::Error::New(env, "keys length is not a multiple of keySize");
  uint32_t count = keys.Length() / ks, deleted = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (bpf_map_delete_elem(fd, keys.Data() + (size_t)i * ks) == 0) deleted++;
    else if (errno != ENOENT) throw ErrnoError(env, "map delete", errno);
  }
  return Napi::Number::New(env, deleted);
}

// mapLookup(fd, key, valueSize) -> Buffer | null
Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = ArgBuffer(info, 1);
  uint32_t vs = ArgU32(info, 2);
  std::vector<uint8_t> value(vs);
  if (bpf_map_lookup_elem(ArgInt(info, 0), key.Data(), value.data()) < 0) {
    if (errno == ENOENT) return env.Null();
    throw ErrnoError(env, "map lookup", errno);
  }
  return Napi::Buffer<uint8_t>::Copy(env, value.data(), value.size());
}

// mapKeys(fd, keySize) -> Buffer of every key, concatenated
Napi::Value MapKeys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  uint32_t ks = ArgU32(info, 1);
  std::vector<uint8_t> all, cur(ks), next(ks);
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
    all.insert(all.end(), next.begin(), next.end());
    cur.swap(next);
    prev = cur.data();
  }
  if (errno != ENOENT) throw ErrnoError(env, "map iteration", errno);
  return Napi::Buffer<uint8_t>::Copy(env, all.data(), all.size());
}

// mapCreate(type, keySize, valueSize, maxEntries, flags, name) -> fd
Napi::Value MapCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = ArgU32(info, 4));
  std::string name = info.Length() > 5 ? ArgString(info, 5) : "";
  int fd = bpf_map_create((enum bpf_map_type)ArgU32(info, 0), name.empty() ? nullptr : name.c_str(), ArgU32(info, 1),
                          ArgU32(info, 2), ArgU32(info, 3), &opts);
  if (fd < 0) throw ErrnoError(env, "creating map " + name, errno);
  return Napi::Number::New(env, fd);
}

// outerSet(outerFd, slots: Uint32Array, innerFds: Int32Array): one batch update of a
// map-in-map. The kernel returns only once every BPF program that was running when the
// update started has finished (an RCU grace period): that is also our barrier.
Napi::Value OuterSet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  Napi::Uint32Array slots = info[1].As<Napi::Uint32Array>();
  Napi::Int32Array fds = info[2].As<Napi::Int32Array>();
  if (slots.ElementLength() != fds.ElementLength()) throw Napi::Error::New(env, "slots and fds differ in length");
  uint32_t count = slots.ElementLength();
  if (count == 0) return env.Undefined();
  std::vector<uint32_t> k(slots.Data(), slots.Data() + count);
  std::vector<int32_t> v(fds.Data(), fds.Data() + count);
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  uint32_t done = count;
  if (bpf_map_update_batch(fd, k.data(), v.data(), &done, &opts) < 0) {
    int err = errno;
    if (err != EINVAL && err != ENOTSUP && err != EOPNOTSUPP) throw ErrnoError(env, "setting inner maps", err);
    for (uint32_t i = 0; i < count; i++)
      if (bpf_map_update_elem(fd, &k[i], &v[i], BPF_ANY) < 0) throw ErrnoError(env, "setting an inner map", errno);
  }
  return env.Undefined();
}

// outerGetId(outerFd, slot) -> inner map id, or 0 when the slot is empty
Napi::Value OuterGetId(const Napi::CallbackInfo& info) {
  uint32_t slot = ArgU32(info, 1), id = 0;
  if (bpf_map_lookup_elem(ArgInt(info, 0), &slot, &id) < 0) {
    if (errno == ENOENT) return Napi::Number::New(info.Env(), 0);
    throw ErrnoError(info.Env(), "reading an inner map slot", errno);
  }
  return Napi::Number::New(info.Env(), id);
}

Napi::Value MapFdById(const Napi::CallbackInfo& info) {
  int fd = bpf_map_get_fd_by_id(ArgU32(info, 0));
  if (fd < 0) throw ErrnoError(info.Env(), "opening map by id", errno);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    if (errno == ENOENT) return Napi::Number::New(info.Env(), -1);
    throw ErrnoError(info.Env(), "opening pinned object " + path, errno);
  }
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0);
  if (fd >= 0) close(fd);
  return info.Env().Undefined();
}

// percpuSums(fd, entries) -> BigInt[]: a per-CPU array of u64, summed over CPUs
Napi::Value PercpuSums(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0);
  uint32_t entries = ArgU32(info, 1);
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) throw ErrnoError(env, "counting CPUs", -cpus);
  std::vector<uint64_t> values(cpus);
  Napi::Array out = Napi::Array::New(env, entries);
  for (uint32_t k = 0; k < entries; k++) {
    uint64_t sum = 0;
    if (bpf_map_lookup_elem(fd, &k, values.data()) == 0)
      for (int c = 0; c < cpus; c++) sum += values[c];
    out.Set(k, Napi::BigInt::New(env, sum));
  }
  return out;
}

// probeProgram(objectPath, programName, { attach?: "auto" | "none" }) -> { ok, error? }
// Loads (and optionally attaches, then detaches) one program of an object: what this
// kernel accepts, found by trying rather than by version numbers.
Napi::Value ProbeProgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0), name = ArgString(info, 1);
  bool attach = info.Length() > 2 && info[2].IsObject() &&
                info[2].As<Napi::Object>().Get("attach").ToString().Utf8Value() == "auto";
  Napi::Object result = Napi::Object::New(env);
  ClearLog();
  bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  if (!obj) {
    result.Set("ok", false);
    result.Set("error", "cannot open " + path + ": " + strerror(errno));
    return result;
  }
  bpf_program* prog;
  bool found = false;
  bpf_object__for_each_program(prog, obj) {
    bool me = name == bpf_program__name(prog);
    found = found || me;
    bpf_program__set_autoload(prog, me);
  }
  std::string error;
  if (!found) {
    error = "no program " + name;
  } else if (int err = bpf_object__load(obj)) {
    error = "load: " + std::string(strerror(-err));
  } else if (attach) {
    prog = bpf_object__find_program_by_name(obj, name.c_str());
    bpf_link* link = bpf_program__attach(prog);
    if (!link) error = "attach: " + std::string(strerror(errno));
    else bpf_link__destroy(link);
  }
  bpf_object__close(obj);
  std::string log = TakeLog();
  result.Set("ok", error.empty());
  if (!error.empty()) {
    result.Set("error", error);
    std::vector<std::string> lines = Lines(log);
    std::string tail;
    for (size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); i++) tail += lines[i] + "\n";
    result.Set("log", tail);
  }
  return result;
}

// The layout of the ABI structs as this compiler sees them: the TypeScript side checks
// its own numbers against these (test/enforcer/abi.test.ts).
Napi::Value Layout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  auto put = [&](const char* k, size_t v) { o.Set(k, Napi::Number::New(env, (double)v)); };
#define SZ(t) put("sizeof " #t, sizeof(struct t))
#define OFF(t, f) put(#t "." #f, offsetof(struct t, f))
  SZ(pal_config); SZ(pal_hook); SZ(pal_class); SZ(pal_str_key); SZ(pal_int_key); SZ(pal_addr_key);
  SZ(pal_workload_key); SZ(pal_inode_key); SZ(pal_alias); SZ(pal_bin); SZ(pal_proc); SZ(pal_event_path); SZ(pal_event);
  OFF(pal_hook, default_class); OFF(pal_hook, unknown_class); OFF(pal_class, bits);
  OFF(pal_event, gen); OFF(pal_event, hook); OFF(pal_event, verdict); OFF(pal_event, rank); OFF(pal_event, flags); OFF(pal_event, seq);
  OFF(pal_event, ktime); OFF(pal_event, cgroup_id); OFF(pal_event, workload_id); OFF(pal_event, pid); OFF(pal_event, tgid); OFF(pal_event, ppid);
  OFF(pal_event, uid); OFF(pal_event, gid); OFF(pal_event, family); OFF(pal_event, protocol); OFF(pal_event, dport);
  OFF(pal_event, daddr); OFF(pal_event, binary); OFF(pal_event, parent); OFF(pal_event, ino); OFF(pal_event, dev); OFF(pal_event, alias_len);
  OFF(pal_event, alias); OFF(pal_event, path_len);
  OFF(pal_event, path_flags); OFF(pal_event, path); OFF(pal_event, args); SZ(pal_args);
  OFF(pal_event_path, prefix); OFF(pal_event_path, suffix);
#undef SZ
#undef OFF
  put("PAL_ABI_VERSION", PAL_ABI_VERSION);
  put("PAL_MAX_CLASSES", PAL_MAX_CLASSES);
  put("PAL_MAX_RANKS", PAL_MAX_RANKS);
  put("PAL_MAX_BITS", PAL_MAX_BITS);
  put("PAL_COUNTERS", PAL_COUNTERS);
  put("PAL_STR_DIMS", PAL_STR_DIMS);
  put("PAL_MAX_LPM_ENTRIES", PAL_MAX_LPM_ENTRIES);
  put("PAL_ARGS_MAX", PAL_ARGS_MAX);
  put("PAL_ARGS_COUNT", PAL_ARGS_COUNT);
  return o;
}

// mount(source, target, fstype): for bpffs, tracefs and securityfs when nothing mounted them.
Napi::Value Mount(const Napi::CallbackInfo& info) {
  std::string source = ArgString(info, 0), target = ArgString(info, 1), type = ArgString(info, 2);
  if (mount(source.c_str(), target.c_str(), type.c_str(), 0, nullptr) < 0)
    throw ErrnoError(info.Env(), "mounting " + type + " on " + target, errno);
  return info.Env().Undefined();
}

// CLOCK_BOOTTIME now, in ns: events carry bpf_ktime_get_boot_ns().
Napi::Value BootTimeNs(const Napi::CallbackInfo& info) {
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  return Napi::BigInt::New(info.Env(), ns);
}

Napi::Value LibbpfVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), libbpf_version_string());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  libbpf_set_print(CapturePrint);
  libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
  exports.Set("BpfObject", BpfObject::Init(env));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate));
  exports.Set("mapUpdateMany", Napi::Function::New(env, MapUpdateMany));
  exports.Set("mapDeleteMany", Napi::Function::New(env, MapDeleteMany));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup));
  exports.Set("mapKeys", Napi::Function::New(env, MapKeys));
  exports.Set("mapCreate", Napi::Function::New(env, MapCreate));
  exports.Set("outerSet", Napi::Function::New(env, OuterSet));
  exports.Set("outerGetId", Napi::Function::New(env, OuterGetId));
  exports.Set("mapFdById", Napi::Function::New(env, MapFdById));
  exports.Set("objGet", Napi::Function::New(env, ObjGet));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("percpuSums", Napi::Function::New(env, PercpuSums));
  exports.Set("probeProgram", Napi::Function::New(env, ProbeProgram));
  exports.Set("layout", Napi::Function::New(env, Layout));
  exports.Set("libbpfVersion", Napi::Function::New(env, LibbpfVersion));
  exports.Set("mount", Napi::Function::New(env, Mount));
  exports.Set("bootTimeNs", Napi::Function::New(env, BootTimeNs));
  return exports;
}

}  // namespace

NODE_API_MODULE(palisade_enforcer, Init)
