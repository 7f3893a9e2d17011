"""DICOM network services (pynetdicom): the platform's AE (``server``), its handlers, the one
mapping of refusals to PS3.7 statuses (``status``) and the SCU side (``scu``: C-ECHO, C-MOVE from a
hospital PACS, C-STORE push). A transport: it takes ``ImagingService`` from the container."""
