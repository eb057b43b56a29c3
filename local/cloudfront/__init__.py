"""CloudFront invalidations modelled on AWS, served in front of moto.

Why: moto completes every invalidation at once (status ``COMPLETED``, AWS says ``Completed``
after ``InProgress``), makes a new invalidation for a repeated ``CallerReference`` and enforces
no limits -- so neither idempotency nor back-pressure could be tested. This package answers the
three invalidation operations itself (REST-XML, API version 2020-05-31), before moto sees them:

* ``CreateInvalidation`` -> 201 + ``Location``; status ``InProgress`` for ``in_progress_seconds``
  (global default, per-distribution override, both settable at runtime), then ``Completed``.
* ``CallerReference``: same reference + same paths (as a multiset: order is not compared) on the
  same distribution -> the existing invalidation, no new one (and nothing billed); same
  reference + other paths -> ``InvalidationBatchAlreadyExists`` (409).
* In-progress limits per distribution: 3,000 file paths and 15 wildcard paths (a path ending in
  ``*``) -> ``TooManyInvalidationsInProgress`` (400). A single request above a limit on its own
  -> ``BatchTooLarge`` (413).
* Validation: every path starts with ``/`` and is at most 4,000 characters; a ``*`` anywhere but
  last is a literal character, as the developer guide says ("Asterisks (*) inserted anywhere
  else are treated as a literal character match"); a path holding ``~``, literal or ``%7E``, is
  rejected ("Don't use the ~ character in your path. CloudFront doesn't support this character
  for invalidations, whether it's URL-encoded or not": the guide does not say whether AWS
  rejects it or invalidates nothing, so the model takes the strict side and fails loudly) ->
  ``InvalidArgument`` (400); ``Quantity`` must equal the number of items ->
  ``InconsistentQuantities`` (400); unknown distribution -> ``NoSuchDistribution`` (404);
  unknown invalidation -> ``NoSuchInvalidation`` (404).
* Errors use CloudFront's REST-XML shape
  ``<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>``, which
  botocore and the Rust SDK both parse into the error code.
* Every ``CreateInvalidation`` call, accepted or rejected, is logged (time, distribution,
  caller reference, paths, outcome, paths billed) for the control API.
* Faults from :mod:`local.faults` are applied first (Throttling is a rate limit: it comes before
  any validation).

Laid out like a moto service: :mod:`.models` holds the invalidations and the call log,
:mod:`.responses` speaks the REST-XML wire format, :mod:`.urls` says which requests are ours.
"""
