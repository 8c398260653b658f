"""Evaluation metrics of the pose-transfer literature, each in its own small module.

``ssim`` (PATN and GFLA conventions, mask-SSIM), ``pixel`` (L1, PSNR), ``fid`` (streamed statistics, cached
real set), ``inception_score`` (IS / mask-IS), ``lpips`` (LPIPS / mask-LPIPS), ``pckh`` (PATN's counting
rules), ``detection`` (DS), ``matching`` (generated file names → test pairs), ``protocols`` (which metrics and
settings each paper used), ``published`` + ``tables`` (the papers' numbers beside ours).

The orchestration lives in :func:`posetransfer.evaluation.evaluate`. Nothing is imported here eagerly so that
``import posetransfer.metrics.ssim`` stays cheap.
"""
