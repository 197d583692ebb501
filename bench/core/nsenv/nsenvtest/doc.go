// Package nsenvtest helps the tests of the namespace modes: Require
// skips a test that cannot run here (and fails it with CI=true, so that
// CI cannot pass by skipping), Log passes a run's progress to the test's
// log, and AssertNothingLeft checks that a run removed every namespace,
// socket, directory and process it made.
package nsenvtest
