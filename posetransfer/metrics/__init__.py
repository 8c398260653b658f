"""Evaluation metrics of the pose-transfer literature, each in its own small module.

``ssim`` (PATN and GFLA conventions, mask-SSIM), ``pixel`` (L1 and PSNR in the PATN, GFLA and PoNA
conventions), ``fid`` (streamed statistics, cached real set, TF-FID and GFLA's FID), ``inception_score``
(IS / mask-IS), ``lpips`` (LPIPS / mask-LPIPS, ST-LPIPS), ``pckh`` (PATN's counting rules), ``detection`` (DS),
``matching`` (generated file names → test pairs), ``protocols`` (which metrics and settings each paper used),
``ordering`` (which images the official scripts used, in which order), ``engines`` (the networks a run needs),
``accumulate`` (streaming all metrics over batches), ``progress`` (bar / log lines with an ETA),
``published`` + ``tables`` (the papers' numbers beside ours).

The orchestration lives in :func:`posetransfer.evaluation.evaluate`. Nothing is imported here eagerly so that
``import posetransfer.metrics.ssim`` stays cheap.
"""
