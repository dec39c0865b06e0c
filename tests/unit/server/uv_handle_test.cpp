// UvHandle: the one owner of libuv handles. The handle outlives its owner until the close
// callback, callbacks find a null owner from close() on, and the `after` hook runs once the loop
// has let go of the handle. Run under ASan, a leak or a use after free shows here.
#include <gtest/gtest.h>

#include <utility>

#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "server/net/uv_handle.h"

namespace ferry::server {
namespace {

class UvHandleTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(uv_loop_init(&loop_), 0); }
  void TearDown() override {
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
  }
  uv_loop_t loop_{};
};

TEST_F(UvHandleTest, EmptyUntilInitialisedAndAfterClose) {
  UvHandle<uv_timer_t> t;
  EXPECT_FALSE(t);
  EXPECT_EQ(t.get(), nullptr);
  t.close();  // nothing to do
  int owner = 0;
  ASSERT_EQ(t.init(&loop_, &owner, uv_timer_init), 0);
  ASSERT_TRUE(t);
  EXPECT_EQ(UvHandle<uv_timer_t>::owner_of<int>(t.get()), &owner);
  EXPECT_EQ(t.handle()->loop, &loop_);
  t.close();
  EXPECT_FALSE(t);
}

TEST_F(UvHandleTest, DestructorClosesAndTheLoopFreesIt) {
  {
    UvHandle<uv_timer_t> t;
    ASSERT_EQ(t.init(&loop_, nullptr, uv_timer_init), 0);
    EXPECT_EQ(uv_loop_alive(&loop_), 0);  // an idle timer keeps no loop alive, but it is open
  }
  // TearDown's uv_run frees it; uv_loop_close fails if it were still open.
}

TEST_F(UvHandleTest, FailedInitKeepsNothing) {
  UvHandle<uv_udp_t> u;
  EXPECT_NE(u.init(&loop_, nullptr, uv_udp_init_ex, 0xFFFFu), 0);  // unknown flags: UV_EINVAL
  EXPECT_FALSE(u);
}

TEST_F(UvHandleTest, CallbacksSeeTheOwnerUntilClose) {
  struct Owner {
    UvHandle<uv_timer_t> timer;
    int fired = 0;
  } owner;
  ASSERT_EQ(owner.timer.init(&loop_, &owner, uv_timer_init), 0);
  uv_timer_start(
      owner.timer.get(),
      [](uv_timer_t* t) {
    auto* o = UvHandle<uv_timer_t>::owner_of<Owner>(t);
    ASSERT_NE(o, nullptr);
    if (++o->fired == 3) o->timer.close();  // closing from inside its own callback
    // The handle itself is still valid here: it is freed by the close callback.
    EXPECT_EQ(t->data, o->fired == 3 ? nullptr : o);
      },
      0, 1);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(owner.fired, 3);
  EXPECT_FALSE(owner.timer);
}

TEST_F(UvHandleTest, AfterRunsFromTheCloseCallback) {
  int after = 0;
  UvHandle<uv_async_t> a;
  ASSERT_EQ(a.init(&loop_, nullptr, uv_async_init, [](uv_async_t*) {}), 0);
  a.close([](void* p) { ++*static_cast<int*>(p); }, &after);
  EXPECT_EQ(after, 0);  // not before the loop has run the close callback
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(after, 1);
}

TEST_F(UvHandleTest, MoveTransfersOwnership) {
  UvHandle<uv_timer_t> a;
  ASSERT_EQ(a.init(&loop_, nullptr, uv_timer_init), 0);
  uv_timer_t* raw = a.get();
  UvHandle<uv_timer_t> b(std::move(a));
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_EQ(b.get(), raw);
  UvHandle<uv_timer_t> c;
  ASSERT_EQ(c.init(&loop_, nullptr, uv_timer_init), 0);
  c = std::move(b);  // closes c's own handle first
  EXPECT_EQ(c.get(), raw);
  int owner = 0;
  c.set_owner(&owner);
  EXPECT_EQ(UvHandle<uv_timer_t>::owner_of<int>(raw), &owner);
}

// A write still in flight when its stream closes ends with UV_ECANCELED before the close
// callback; its callback must find no owner, and `after` must run only after it.
TEST_F(UvHandleTest, CancelledWritesFindNoOwner) {
  int fds[2];
  ASSERT_EQ(uv_socketpair(SOCK_STREAM, 0, fds, 0, 0), 0);
  struct State {
    UvHandle<uv_pipe_t> pipe;
    bool write_saw_owner = true;
    int write_status = 0;
    bool after_ran = false;
    bool write_ran_before_after = false;
  } st;
  ASSERT_EQ(st.pipe.init(&loop_, &st, uv_pipe_init, 0), 0);
  ASSERT_EQ(uv_pipe_open(st.pipe.get(), fds[0]), 0);
  // More than the socket buffer takes, so the write is still queued when we close.
  static char big[8 * 1024 * 1024];
  uv_buf_t buf = uv_buf_init(big, sizeof big);
  uv_write_t req{};
  req.data = &st;
  ASSERT_EQ(uv_write(
                &req, st.pipe.stream(), &buf, 1,
                [](uv_write_t* r, int status) {
    auto* s = static_cast<State*>(r->data);
    s->write_status = status;
    s->write_saw_owner = UvHandle<uv_pipe_t>::owner_of<State>(r->handle) != nullptr;
    s->write_ran_before_after = !s->after_ran;
                }),
            0);
  st.pipe.close([](void* p) { static_cast<State*>(p)->after_ran = true; }, &st);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(st.write_status, UV_ECANCELED);
  EXPECT_FALSE(st.write_saw_owner);
  EXPECT_TRUE(st.write_ran_before_after);
  EXPECT_TRUE(st.after_ran);
  ::close(fds[1]);
}

}  // namespace
}  // namespace ferry::server
